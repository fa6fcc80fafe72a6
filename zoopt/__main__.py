"""``python -m zoopt``: the same as the ``zoopt`` command."""

import sys

from zoopt.cli import main

sys.exit(main())
