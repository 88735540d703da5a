"""One-command benchmark of the sentiment service: `python -m benchmark`."""
