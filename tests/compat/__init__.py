"""Code written for flowrra 0.1.8, from its documentation, running on ours (issue 9)."""
