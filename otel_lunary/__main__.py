"""``python -m otel_lunary`` runs the ``otel-lunary`` command."""

import sys

from otel_lunary.cli import main

sys.exit(main())
