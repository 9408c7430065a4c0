"""`python -m smartduka_tui.simulator serve ...`: the same as `smartduka-sim`."""

import sys

from smartduka_tui.simulator.cli import main

sys.exit(main())
