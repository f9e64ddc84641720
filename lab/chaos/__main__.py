"""`python -m lab.chaos`: see lab.chaos.command."""

import sys

from lab.chaos.command import main

sys.exit(main())
