"""`python -m toolwire.server` runs the `toolwire` command."""

import sys

from toolwire.server.cli import main

sys.exit(main())
