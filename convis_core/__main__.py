"""``python -m convis_core``: see :mod:`convis_core.cli`."""

import sys

from .cli import main

sys.exit(main())
