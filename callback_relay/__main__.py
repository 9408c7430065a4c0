"""`python -m callback_relay` is `smartduka-relay`."""

import sys

from callback_relay.cli import main

sys.exit(main())
