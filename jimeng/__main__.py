"""``python -m jimeng``: the ``jimeng`` command."""

import sys

from jimeng.cli import main

sys.exit(main())
