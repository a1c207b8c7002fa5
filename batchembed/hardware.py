"""How many prepare workers and torch threads a run uses, chosen from the machine.

CPU: the model's matmuls want every core that is free, and oversubscribing them costs
far more than it gains (torch's OpenMP threads wait at every barrier for the slowest,
and a thread that shares its core with another process is slow): so torch gets the
cores no other process is running on, sampled at start-up. Preparing costs ~4% of the
default model's forward per core (BENCHMARKS.md), so on a small machine the CPU stages
run in the model's process, in a reader thread that overlaps the forward (torch releases
the GIL): on 2 cores a worker process measured 1-3% slower, and its start-up costs
0.5 s. As cores multiply the forward gets faster and preparing becomes a larger share:
one worker per CPU_CORES_PER_WORKER cores, taken from torch's threads.
CUDA: the model needs one core to drive it; every other core works for it.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MAX_CUDA_WORKERS = 32
CPU_CORES_PER_WORKER = 8  # reasoned, not measured: no machine with 8+ cores was at hand


@dataclass(frozen=True)
class Layout:
    workers: int  # prepare worker processes (0: prepare in a thread of this process)
    threads: int | None  # torch intra-op threads; None: torch's own choice (e.g. OMP_NUM_THREADS)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def busy_cores(samples: int = 5, interval: float = 0.02) -> int:
    """Cores other processes keep busy right now: the median number of runnable tasks
    (/proc/stat procs_running) minus this one; 0 where the kernel does not say."""
    counts: list[int] = []
    for k in range(samples):
        try:
            with open("/proc/stat") as stat:
                for line in stat:
                    if line.startswith("procs_running"):
                        counts.append(int(line.split()[1]) - 1)
                        break
        except (OSError, ValueError):
            return 0
        if k + 1 < samples:
            time.sleep(interval)
    return max(0, int(statistics.median(counts))) if counts else 0


def choose_layout(device: torch.device, workers: int | None = None, threads: int | None = None) -> Layout:
    """Explicit settings win; OMP_NUM_THREADS (or MKL_NUM_THREADS) in the environment leaves torch's threads alone."""
    cores = usable_cores()
    env_threads = any(os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    if device.type == "cuda":
        if workers is None:
            workers = max(1, min(MAX_CUDA_WORKERS, cores - 1))
        if threads is None and not env_threads:
            threads = 1  # the model process only launches kernels
    else:
        if workers is None:
            workers = cores // CPU_CORES_PER_WORKER
        if threads is None and not env_threads:
            threads = max(1, cores - busy_cores() - workers)
    layout = Layout(workers, threads)
    log.info("%d usable cores: %d prepare workers, torch threads %s", cores, workers, threads or "(torch's)")
    return layout
