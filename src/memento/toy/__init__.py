"""The synthetic toy task and the tiny memento model shipped inside the package.

`CHECKPOINT` is where that embedded model lives (importing this costs nothing, unlike `toy.train`,
which loads the training stack); `TRAIN_SEED` and `HELD_OUT_SEED` (owned by `toy.task`) keep the
problems it was trained on apart from the ones the demo tests it on.
"""

from pathlib import Path

from memento.toy.task import HELD_OUT_SEED, TRAIN_SEED

CHECKPOINT = Path(__file__).resolve().parent / "checkpoint"
"""The embedded default model (written by `memento toy train --install`)."""

__all__ = ["CHECKPOINT", "HELD_OUT_SEED", "TRAIN_SEED"]
