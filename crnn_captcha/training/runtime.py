"""How training runs: threads and loader workers, seeding and random state, logging, the process
group. (The device a name asks for is :func:`crnn_captcha.read.device.pick_device`, shared with the
reader, so "auto" means the same thing everywhere.)"""
from __future__ import annotations

import copy
import gc
import os
import random
import signal
import sys
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from ..data.augment import as_tuples
from ..errors import OptionError
from ..read.device import pick_device


def default_threads() -> int:
    """CPU threads for training when none are asked for: half the cores, at most 4. A small model's
    steps gain little from more threads, and with all cores busy elsewhere OpenMP's spinning threads
    collapse (on 2 cores, 2 threads beside another job ran 5-30x slower than 1 thread)."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def default_workers(cuda: bool, *, cpu: int, cap: int | None = None) -> int:
    """Loader processes when none are asked for: ``cpu`` when training on the CPU (whose cores the
    training step needs); on a GPU all cores but two, shared among the processes torchrun started on
    this machine, at most ``cap`` each and at least one."""
    if not cuda:
        return cpu
    per_process = ((os.cpu_count() or 4) - 2) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, per_process if cap is None else min(cap, per_process))


def leave_interrupts_to_main() -> None:
    """In a loader worker: ignore Ctrl-C, which reaches the whole process group. The main process
    stops the run at the epoch kept and then ends its workers; a worker that died of the signal
    first left the main process's pin-memory thread a dead connection to print a traceback about."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def log(msg: str) -> None:
    """A progress or status line, on stderr (results go to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global generators' states, in plain types a weights-only checkpoint can hold."""
    state = {
        "python": random.getstate(),
        "numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()[1:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(as_tuples(state["python"]))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Dist:
    """The process group, when started by torchrun; a single process otherwise."""

    def __init__(self, device_name: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = pick_device(device_name, self.local_rank)
        if self.device.type == "cuda" and self.local_rank >= torch.cuda.device_count():
            local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
            raise OptionError(f"torchrun started {local} processes on this machine, but it has "
                              f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node={torch.cuda.device_count()} "
                              "(one process per GPU) or --device cpu")
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
        if self.world > 1:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend)

    def alone(self) -> "Dist":
        """This process on its own device, as if no other were running (one process trains the
        glyph stage while the others wait)."""
        single = copy.copy(self)
        single.world, single.rank = 1, 0
        return single

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Sum numbers over all processes."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def run(self, work: Callable[[], int]) -> int:
        """``work()``'s exit code, with the process group ended after it on every path: an error
        or Ctrl-C as well as a clean finish (0), the only one that waits for the other processes."""
        code = 1
        try:
            code = work()
        finally:
            self.close(wait=code == 0)
        return code

    def close(self, wait: bool = True) -> None:
        """End the process group: after the other processes (``wait``, on a clean finish) and after
        the objects that use it (a DDP wrapper) are gone, so no gloo thread outlives it."""
        if self.world > 1 and dist.is_initialized():
            if wait:
                self.barrier()
            gc.collect()
            dist.destroy_process_group()
