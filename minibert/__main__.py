"""`python -m minibert ...` runs the `minibert` command (where the script is not on PATH)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
