"""Every benchmark script runs at a tiny size and prints its table, so none rots unseen.

Each script runs as a user runs it (`python benchmarks/NAME.py ...`, a process of its own, this
checkout's batchembed first on the path) with the smallest sizes it takes and tiny or random
models where it builds its own. Only that it finishes (exit 0) and writes its table is checked:
the figures are the scripts' business, and timings never decide a test. The import checks keep
benchmarks/ one layer: scripts import helper modules, helpers import helpers, nothing imports a
script, and there is no circle.
"""

from __future__ import annotations

import ast
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
HELPERS = {"common", "corpus", "workload", "contenders", "precision_table"}  # imported, never run alone
TABLE = "|---"
RAY = [pytest.mark.ray]  # starts a local Ray cluster of its own

# script -> its tiny arguments ({work}: a fresh directory); marks for what it starts
PASS = f"{shlex.quote(sys.executable)} -c pass"  # a command that does nothing: {{run}} is alternate.py's
SCRIPTS: dict[str, tuple[list[str], list[pytest.MarkDecorator]]] = {
    "alternate": (["--runs", "2", "--warmup", "1", "--logs", "{work}/logs", f"{PASS} a{{{{run}}}}", PASS], []),
    "feed_ceiling": (["--pairs", "16", "--repeats", "1", "--workers", "1", "--workdir", "{work}"], []),
    # gpu.py's CPU mode: the random tiny BERT in fp32 (bf16 is refused on a CPU without it); the OOM
    # back-off needs CUDA and says so
    "gpu": (
        ["--device", "cpu", "--size", "tiny", "--precisions", "fp32", "--pairs", "16", "--repeats", "1"]
        + ["--workdir", "{work}"],
        [],
    ),
    "integrity": (["--pairs", "16", "--repeats", "1"], []),
    "memory": (["--pairs", "8", "--sample-every", "0.2", "--workdir", "{work}"], []),
    "partial_forward": (["--pairs", "8", "--repeats", "1", "--workdir", "{work}"], []),
    "precision_forward": (["--pairs", "8", "--repeats", "1", "--threads", "1", "--workdir", "{work}"], []),
    "ray_driver": (["--sizes", "16", "--repeats", "1"], RAY),
    "ray_stages": (["--pairs", "16", "--repeats", "1", "--memory-pairs", "0", "--workdir", "{work}"], RAY),
    "stream_memory": (["--pairs", "8,16", "--tokenizer", "whitespace", "--workdir", "{work}"], []),
    "subwords": (["--pairs", "16", "--repeats", "1", "--workdir", "{work}"], []),
    "threads": (["--pairs", "8", "--repeats", "1", "--busy", "0", "--workdir", "{work}"], []),
    "usage_aggregate": (["--uses", "100", "--repeats", "1", "--workdir", "{work}"], []),
    # both comparisons, GloVe only (the transformer's cost is run's: measured by throughput.py)
    "uses_cost": (["--uses", "8", "--repeats", "1", "--all-pairs", "4", "--options=--no-transformer"], []),
    # the main table, the precision table (benchmarks/precision_table.py) and a one-budget sweep
    "throughput": (
        ["--pairs", "8", "--repeats", "1", "--bare-budgets", "2048", "--budgets", "512"]
        + ["--precision-busy", "0", "--no-bare", "--workdir", "{work}"],
        [],
    ),
}


def _modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text()) for path in sorted(BENCHMARKS.glob("*.py"))}


def _is_script(tree: ast.Module) -> bool:
    """A module with an `if __name__ == "__main__":` block."""
    return any(
        isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and ast.unparse(node.test.left) == "__name__"
        for node in tree.body
    )


def _benchmark_imports(tree: ast.Module) -> set[str]:
    """The benchmarks modules a module imports, anywhere in it (functions included)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "benchmarks":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("benchmarks."):
            found.add(node.module.split(".")[1])
    return found


def _run(name: str, args: list[str], work: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, str(BENCHMARKS / f"{name}.py"), *(a.format(work=work) for a in args)]
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=marks, id=name) for name, (_, marks) in sorted(SCRIPTS.items())]
)
def test_the_benchmark_script_runs_at_a_tiny_size_and_prints_its_table(name: str, tmp_path: Path) -> None:
    args, _ = SCRIPTS[name]
    done = _run(name, args, tmp_path)
    assert done.returncode == 0, f"{name}.py exited {done.returncode}:\n{done.stderr[-4000:]}"
    assert TABLE in done.stdout, f"{name}.py printed no table:\n{done.stdout[-2000:]}"


def test_the_corpus_script_writes_its_corpus(tmp_path: Path) -> None:
    done = _run("corpus", ["--pairs", "8", "-o", "{work}/corpus.parquet"], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    import pyarrow.parquet as pq

    assert pq.read_metadata(tmp_path / "corpus.parquet").num_rows == 8


def test_every_benchmark_script_has_a_smoke_run() -> None:
    scripts = {name for name, tree in _modules().items() if _is_script(tree) and name not in HELPERS}
    assert scripts == set(SCRIPTS), "a script without a smoke run here, or a smoke run of a script that is gone"


def test_benchmark_modules_import_helpers_only_one_way_and_no_script() -> None:
    modules = _modules()
    for name, tree in modules.items():
        imported = _benchmark_imports(tree)
        assert imported <= HELPERS, f"{name}.py imports {sorted(imported - HELPERS)}: move what it needs to a helper"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("benchmarks."), f"{name}.py: write `from benchmarks import X`"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                plain = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not set(plain) & set(modules), f"{name}.py imports a benchmark module by its bare name"


def test_the_benchmark_helpers_import_each_other_without_a_circle() -> None:
    graph = {name: _benchmark_imports(tree) for name, tree in _modules().items()}

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import circle: {' -> '.join((*path, name))}"
        for other in graph.get(name, ()):
            visit(other, (*path, name))

    for name in graph:
        visit(name, ())
