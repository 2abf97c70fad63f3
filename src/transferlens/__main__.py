"""``python -m transferlens``: the same as the ``transferlens`` command (see ``cli.py``)."""

import sys

from transferlens.cli import main

if __name__ == "__main__":
    sys.exit(main())
