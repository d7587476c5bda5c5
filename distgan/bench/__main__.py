"""`python -m distgan.bench`: see distgan/bench/cli.py."""

import sys

from distgan.bench.cli import main

sys.exit(main())
