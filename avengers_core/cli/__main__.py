"""`python -m avengers_core.cli`."""

import sys

from avengers_core.cli.commands import main

sys.exit(main())
