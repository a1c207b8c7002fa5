"""Helpers shared by the benchmark scripts: child processes with their own peak RSS,
`batchembed run` command lines, busy neighbours, the machine description, medians.

Every module in benchmarks/ imports its helpers one way, `from benchmarks import common, corpus`,
and names them qualified (`common.median`); a script imports helper modules only, never another
script (tests/test_benchmarks_smoke.py checks both, and runs every script at a tiny size).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ChildRun:
    """One finished child process: exit code, wall seconds, its own peak RSS."""

    returncode: int
    wall_s: float
    peak_rss_mib: float
    log: str
    cpu_s: float = 0.0  # user + system seconds: less sensitive than wall time to other work on the machine
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MiB)


def _sample_rss(pid: int, every: float, done: threading.Event, out: list[tuple[float, float]]) -> None:
    """Poll the child's RSS until it exits: shows whether memory grows during a run."""
    import psutil

    started = time.perf_counter()
    try:
        process = psutil.Process(pid)
        while not done.wait(every):
            out.append((time.perf_counter() - started, process.memory_info().rss / 2**20))
    except psutil.Error:  # the child exited between two samples
        pass


def run_child(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None, sample_every: float | None = None
) -> ChildRun:
    """Run `cmd` and measure it alone.

    os.wait4 returns the rusage of exactly this child (and the grandchildren it
    waited for), unlike getrusage(RUSAGE_CHILDREN), whose ru_maxrss is the maximum
    over every child reaped so far: with interleaved contenders that would report
    the largest contender for all of them.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    samples: list[tuple[float, float]] = []
    with log_path.open("w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        done = threading.Event()
        sampler = None
        if sample_every:
            sampler = threading.Thread(target=_sample_rss, args=(proc.pid, sample_every, done, samples), daemon=True)
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        if sampler is not None:
            sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: stop Popen waiting again
    log_text = log_path.read_text(errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    return ChildRun(proc.returncode, wall, usage.ru_maxrss / 1024, log_text, cpu, samples)


def check(run: ChildRun, what: str, ok_codes: tuple[int, ...] = (0,)) -> ChildRun:
    if run.returncode not in ok_codes:
        sys.exit(f"{what} failed with exit code {run.returncode}:\n{run.log[-4000:]}")
    return run


def batchembed_cmd(inputs: Path, output: Path, options: list[str], threads: int | None) -> list[str]:
    """`batchembed run INPUT -o OUTPUT --overwrite -q ...`, the installed console script
    (with `--threads N` when threads is given)."""
    args = ["run", str(inputs), "-o", str(output), "--overwrite", "-q", *options]
    if threads is not None:
        args += ["--threads", str(threads)]
    return [batchembed_exe(), *args]


def run_batchembed(
    inputs: Path,
    output: Path,
    options: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    threads: int | None = None,
    sample_every: float | None = None,
) -> ChildRun:
    """`batchembed run` in a child process of its own, measured; the script stops if it fails."""
    cmd = batchembed_cmd(inputs, output, options, threads)
    return check(run_child(cmd, log, env, sample_every), f"batchembed run ({output.name})")


def batchembed_exe() -> str:
    return shutil.which("batchembed") or str(Path(sys.executable).with_name("batchembed"))


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def read_summary(output: Path) -> dict[str, Any]:
    # the bookkeeping lives beside the output directory (batchembed/io/layout.py)
    return json.loads(output.with_name(output.name + ".batchembed").joinpath("summary.json").read_text())


@contextlib.contextmanager
def busy(processes: int) -> Iterator[None]:
    """`processes` busy loops beside the measurement, as on a machine shared with other work."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def command_line(script: str) -> str:
    """The line that heads a script's tables: the command that made them."""
    return f"Command: `python benchmarks/{Path(script).name} {shlex.join(sys.argv[1:])}`\n"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _cpuinfo(field: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _batchembed_version() -> str:
    """Version and commit; "dirty" when the working tree had uncommitted changes at measuring time."""
    import batchembed

    repo = Path(batchembed.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown commit"
    return f"{batchembed.__version__} ({commit})"


def machine() -> dict[str, str]:
    """What the figures were measured on; the CPU flags that matter for bf16 kernels."""
    import torch
    import transformers

    flags = set(_cpuinfo("flags").split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile", "amx_int8")
    info = {
        "batchembed": _batchembed_version(),
        "cpu": f"{_cpuinfo('model name') or platform.processor()} (family {_cpuinfo('cpu family')}, "
        f"model {_cpuinfo('model').split()[0] if _cpuinfo('model') else '?'})",
        "cores": f"{len(os.sched_getaffinity(0))} usable ({os.cpu_count()} online)",
        "cpu flags": ", ".join(f for f in wanted if f in flags) or "none of " + ", ".join(wanted),
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "python": platform.python_version(),
        "torch": f"{torch.__version__} (default threads {torch.get_num_threads()}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()})",
        "transformers": transformers.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "load average at start": load_average(),
    }
    try:
        import flair

        info["flair"] = flair.__version__
    except ImportError:
        pass
    return info


def machine_markdown(info: dict[str, str]) -> str:
    return "\n".join(f"- {key}: {value}" for key, value in info.items())
