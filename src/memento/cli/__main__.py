"""`python -m memento.cli` (and `accelerate launch -m memento.cli`) runs the `memento` command."""

import sys

from memento.cli import main

sys.exit(main())
