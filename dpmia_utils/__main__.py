"""`python -m dpmia_utils`: see cli.py."""

import sys

from .cli import main

sys.exit(main())
