"""``python -m sgl.engine.cli``: the `sgl` command (how torchrun and accelerate launch start it)."""

import sys

from .main import main

sys.exit(main())
