"""`memento` for multi-process tests, launched by torchrun.

`without_deepspeed_shm()` (run at import with ``MEMENTO_TEST_NO_SHM=1``) turns DeepSpeed's shared-memory
allreduce op off: its C++ is compiled on first use (about 3 minutes on 2 busy cores), so the tests let
DeepSpeed's collectives run on the gloo process group instead.
"""

from __future__ import annotations

import os
import sys


def without_deepspeed_shm() -> None:
    """Mark DeepSpeed's CPU shared-memory comm op as unavailable (it is then never built)."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


if os.environ.get("MEMENTO_TEST_NO_SHM") == "1":
    without_deepspeed_shm()

if __name__ == "__main__":
    from memento.cli import main

    sys.exit(main())
