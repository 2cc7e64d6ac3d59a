"""Training across processes (torchrun / accelerate launch DDP, DeepSpeed): who writes, when to wait, gathers.

One rule for `memento train`: the process the Trainer saves from (`TrainingArguments.should_save`,
global rank 0) alone writes files; every process reads them only after a `barrier`. Under
DeepSpeed ZeRO-3 each process holds a shard of every parameter, so an edit of whole rows happens
inside `gathered`, which writes rank 0's edit back into every shard.
"""

from __future__ import annotations

import datetime
import gc
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from memento.errors import UsageError
from memento.training import heartbeat


def start(arguments: Any) -> None:
    """Set up the process group the launcher asked for (torchrun / accelerate env), as the Trainer will."""
    _ = arguments.world_size  # TrainingArguments sets up its devices (and the process group) on first use
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        heartbeat.start(torch.distributed.get_rank(), torch.distributed.get_world_size())
    if arguments.deepspeed:  # zero.Init (at load, before any Trainer) asks DeepSpeed's own view of the group
        import deepspeed

        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            _group_of_one()  # one process without a launcher; DeepSpeed would look for MPI
        deepspeed.init_distributed()  # adopts the torch process group set up above (or forms the group of one)


_collective_timeout_s: float | None = None
"""The ``--ddp-timeout`` in force (given to `start_group`), for `report_timeout`'s line."""


def start_group(timeout_s: float, backend: str | None, cpu: bool) -> None:
    """Start a launched CPU run's process group with the collective timeout ``--ddp-timeout`` (seconds).

    Call it before `TrainingArguments` is built (its constructor starts the group). transformers (5.x)
    hands the timeout to the group it starts on GPUs only; on CPU the group would wait torch's default
    30 minutes on a rank that stopped answering. accelerate (and DeepSpeed) adopt a group already started.
    """
    global _collective_timeout_s
    _collective_timeout_s = timeout_s
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    if not launched or not torch.distributed.is_available() or torch.distributed.is_initialized():
        return
    if torch.cuda.is_available() and not cpu:
        return  # the GPU path: TrainingArguments passes the timeout itself
    timeout = datetime.timedelta(seconds=timeout_s)
    torch.distributed.init_process_group(backend=backend or "gloo", timeout=timeout)


def _group_of_one() -> None:
    """The launcher variables of a single process (rank 0 of 1, a free local port), where none are set."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    for name, value in launch.items():
        os.environ.setdefault(name, value)


def report_timeout(error: BaseException, timeout_s: float | None = None) -> None:
    """If `error` is a collective that timed out, say in one line which rank stopped answering and end the process.

    `timeout_s`: the collective timeout to name (default: the one `start_group` was given).

    Exit status 1, at once: the process group is broken (a collective still waits on the silent rank), and
    freeing it, or letting the interpreter finalize it, can hang on that rank or abort. Only in a group of
    several processes: elsewhere a "timed out" error is no collective's, and keeps its own traceback.
    """
    grouped = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not heartbeat.is_timeout(error) or not grouped or torch.distributed.get_world_size() < 2:
        return
    waited = timeout_s if timeout_s is not None else _collective_timeout_s
    line = heartbeat.stalled_line(error, waited if waited is not None else float("nan"))
    print(f"memento train: error: {line}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(1)


def barrier() -> None:
    """Wait for every process (a no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def finish() -> None:
    """Leave the process group before the process exits; call it once the model is out of scope.

    A group that outlives the interpreter can abort the exit ("terminate called without an active
    exception"): a gloo worker still releasing a finished collective's tensors needs the GIL while
    Python finalizes. So the group is freed here, its workers joined: cycles are collected first (ZeRO-3
    parameters hold the group), and under DeepSpeed its own teardown also drops DeepSpeed's references.
    """
    heartbeat.stop()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    gc.collect()
    deepspeed_comm = sys.modules.get("deepspeed.comm")
    if deepspeed_comm is not None and deepspeed_comm.is_initialized():
        deepspeed_comm.destroy_process_group()
    else:
        torch.distributed.destroy_process_group()


def rank() -> int:
    """This process's global rank (0 in a single process)."""
    initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    return torch.distributed.get_rank() if initialized else 0


def launch_note() -> str | None:
    """A line for a launch that runs fewer processes than one may think: `accelerate launch --cpu` starts one."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" and "WORLD_SIZE" not in os.environ:
        return (
            "accelerate launch --cpu starts a single process (its --num_processes counts only for MPI launches); "
            "for N CPU processes use torchrun --nproc_per_node N or accelerate launch --multi_gpu --num_processes N"
        )
    return None


def writes_files(arguments: Any) -> bool:
    """Whether this process writes the stage's files: the one the Trainer saves from."""
    return bool(arguments.should_save)


def zero3_enabled() -> bool:
    """Whether a DeepSpeed ZeRO-3 config is in force (`TrainingArguments(deepspeed=...)` alive)."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    return bool(is_deepspeed_zero3_enabled())


@contextmanager
def gathered(parameters: Sequence[torch.nn.Parameter]) -> Iterator[None]:
    """The whole `parameters` inside the block; under ZeRO-3, rank 0's edits are written back to every shard."""
    if zero3_enabled():
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(parameters), modifier_rank=0):
            yield
    else:
        yield


def full_rows(weight: torch.nn.Parameter) -> int:
    """Rows of an embedding matrix, also when ZeRO-3 left this process an empty shard of it."""
    shape = getattr(weight, "ds_shape", None)
    return int(shape[0]) if shape is not None else int(weight.shape[0])


def check_sharding(arguments: Any) -> None:
    """FSDP runs on GPUs only; on CPU the Trainer (and accelerate's FSDP config) would quietly train plain DDP."""
    accelerate_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true", "yes")
    if (arguments.fsdp or accelerate_fsdp) and not torch.cuda.is_available():
        source = "--fsdp" if arguments.fsdp else "accelerate's FSDP config (ACCELERATE_USE_FSDP)"
        raise UsageError(
            f"{source}: FSDP needs GPUs (no CUDA device here); on CPU train with plain DDP "
            "(torchrun / accelerate launch without FSDP) or DeepSpeed ZeRO-3 (--deepspeed CONFIG.json)"
        )


def check_zero3_saves_weights(arguments: Any) -> None:
    """ZeRO-3 must gather the weights when saving, or stage 1 leaves no checkpoint for stage 2 and the output."""
    config = getattr(arguments, "hf_deepspeed_config", None)
    if config is None or not config.is_zero3():
        return
    gathered = ("stage3_gather_16bit_weights_on_model_save", "stage3_gather_fp16_weights_on_model_save")  # new, legacy
    if not any(config.get_value(f"zero_optimization.{key}", False) for key in gathered):
        raise UsageError(
            f"--deepspeed {arguments.deepspeed}: ZeRO-3 needs "
            '"zero_optimization": {"stage3_gather_16bit_weights_on_model_save": true} so that the model is saved'
        )
