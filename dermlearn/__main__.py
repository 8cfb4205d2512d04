"""``python -m dermlearn`` runs the ``dermlearn`` command."""

import sys

from dermlearn.cli import main

sys.exit(main())
