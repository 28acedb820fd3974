"""``python -m flowrra`` is the ``flowrra`` command (used to start worker subprocesses)."""

import sys

from flowrra.cli import main

sys.exit(main())
