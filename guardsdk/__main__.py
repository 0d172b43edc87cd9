"""``python -m guardsdk``: the command line."""

import sys

from guardsdk.cli import main

sys.exit(main())
