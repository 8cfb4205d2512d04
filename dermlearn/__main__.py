"""``python -m dermlearn`` runs the ``dermlearn`` command."""

import sys

from .cli import main

sys.exit(main())
