"""`memento` for multi-process tests, launched by torchrun: with ``MEMENTO_TEST_NO_SHM=1``, DeepSpeed's
shared-memory allreduce op is off, so its C++ (compiled on first use: about 3 minutes on 2 busy cores)
is never built and DeepSpeed's collectives run on the gloo process group."""

from __future__ import annotations

import os
import sys

if os.environ.get("MEMENTO_TEST_NO_SHM") == "1":
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False

from memento.cli import main

if __name__ == "__main__":
    sys.exit(main())
