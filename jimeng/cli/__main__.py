"""``python -m jimeng.cli``."""

import sys

from jimeng.cli import main

sys.exit(main())
