"""``python -m microtune``: the same as the ``microtune`` command."""

import sys

from microtune.cli import main

sys.exit(main())
