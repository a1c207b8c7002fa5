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

import functools
import logging
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
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


# -- CPU features: what the hardware offers for reduced precision -----------------------------

# x86 flags (and aarch64's "bf16") that decide which precisions run natively; the others are
# recorded in the summary so a figure can be traced to the instructions that produced it
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
RECORDED_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "bf16",  # aarch64
)


@dataclass(frozen=True)
class CpuFeatures:
    model: str
    flags: frozenset[str]  # those of RECORDED_FLAGS this CPU has

    @property
    def bf16(self) -> bool:
        """Native bf16 dot products: without them torch emulates bf16 and runs slower than fp32."""
        return bool(self.flags & BF16_FLAGS)

    def describe(self) -> dict[str, str]:
        return {"cpu": self.model, "cpu_features": " ".join(f for f in RECORDED_FLAGS if f in self.flags)}


def parse_cpuinfo(text: str) -> CpuFeatures | None:
    """The first CPU of a /proc/cpuinfo (x86 `flags`, aarch64 `Features`); None without flags."""
    model, flags = "", ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model name") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value
    if not flags:
        return None
    return CpuFeatures(model or platform.machine(), frozenset(flags.split()) & frozenset(RECORDED_FLAGS))


def _torch_flags() -> set[str]:
    """Where /proc/cpuinfo is not there to read (macOS, Windows): torch's own cpuinfo probes."""
    import torch

    probes = {
        "avx2": "_is_avx2_supported",
        "avx512f": "_is_avx512_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
        "avx512_vnni": "_is_vnni_supported",
        "amx_tile": "_is_amx_tile_supported",
    }
    return {flag for flag, name in probes.items() if getattr(torch.cpu, name, lambda: False)()}


@functools.cache
def cpu_features() -> CpuFeatures:
    try:
        found = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        found = None
    return found or CpuFeatures(platform.processor() or platform.machine(), frozenset(_torch_flags()))


def compute_record(precision: str, backend: str = "torch") -> dict[str, str]:
    """The CPU this process runs on, its features, and the precision and backend of the model:
    written to the run's summary and every output file's metadata (not the fingerprint, so a run
    may resume on another machine)."""
    return {**cpu_features().describe(), "precision": precision, "backend": backend}


def precision_hint(precision: str, device: str) -> str | None:
    """One line for a CPU run in fp32 on a CPU that has native bf16; None otherwise."""
    features = cpu_features()
    if precision != "fp32" or device != "cpu" or not features.bf16:
        return None
    found = ", ".join(sorted(features.flags & BF16_FLAGS))
    return (
        f"Hint: this CPU has bf16 instructions ({found}): --precision bf16 ran the whole job 3.7x as fast as fp32 "
        "on the CPU we measured, with cosine distances within ~6e-3 of fp32 (docs/performance.md)"
    )
