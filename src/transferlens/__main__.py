"""``python -m transferlens``: the ``transferlens`` command (``inspector/cli.py``)."""

import sys

from transferlens.inspector.cli import main

if __name__ == "__main__":
    sys.exit(main())
