"""`python -m avengers_core.cli`."""

import sys

from avengers_core.cli.main import main

sys.exit(main())
