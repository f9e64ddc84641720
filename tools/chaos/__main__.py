"""`python -m tools.chaos`: see tools.chaos.command."""

import sys

from tools.chaos.command import main

sys.exit(main())
