"""CPU task functions for the standalone-executor tests: importable, so picklable by reference."""


def cpu_square(x: int) -> int:
    return x * x
