"""How fast can batchembed feed a model? The whole pipeline with a near-zero-cost model.

    python benchmarks/feed_ceiling.py --pairs 20000 --repeats 3 --workers 1,2

On one generated corpus (benchmarks/corpus.py), GloVe off, the transformer replaced by a
1-layer, 32-wide random BertConfig with the default model's tokenizer (same vocabulary,
same subwords), so the run measures everything but the model. Interleaved and repeated
(each contender in its own process), medians:

  pipeline-W  `batchembed run corpus.parquet -o OUT --no-glove --transformer TINY
              --tokenize-workers W --threads 1` (the layout batchembed picks on a GPU: one
              torch thread drives the model, the other cores prepare): the job's own seconds
              (_summary.json, model loading excluded; worker start-up included) and the whole
              process's wall seconds;
  bare-W      the two tokenizers alone over the same distinct sentences in W processes
              (spawned and warmed before the clock starts): flair's segtok word tokenizer
              (segtok's split_single + word_tokenizer + split_contractions, flair's
              SegtokTokenizer) and the fast subword tokenizer with the words pre-split.

Then, per W and repeat, interleaved, in one process (`--driver W`, torch threads 1 so that the
forward runs in the thread that calls it): the CPU seconds of the process that drives the model (all its
threads, the prepare workers excluded) per million subword tokens, less the model forward's,
split by stage, and a cProfile summary of the model thread.

Targets: pipeline / bare >= 0.85; pipeline 2 workers vs 1 >= 1.8x (on a machine
with at least 3 free cores: the model's process needs one too); driver CPU-s per million
subword tokens outside the forward <= 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common, corpus, workload  # noqa: E402

# -- the model-driving process, measured from inside (child process) --------------------------


def driver_main(workers: int, corpus_path: Path, model: str, output: Path, result: Path, budget: int | None) -> None:
    """One `batchembed run` in this process; CPU time by stage of this process's threads."""
    import cProfile
    import io
    import pstats
    import resource

    import batchembed.engines.local.runner as local
    import batchembed.stages.task as task
    from batchembed.config import EmbedOptions, RunConfig, TransformerSpec
    from batchembed.embedders.load import load_embedders
    from batchembed.embedders.transformer import TransformerEmbedder

    cpu: dict[str, float] = defaultdict(float)
    profile = cProfile.Profile()

    def timed(name: str, fn: Any, profiled: bool = False) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            if profiled:
                profile.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                if profiled:
                    profile.disable()
                cpu[name] += time.thread_time() - started

        return wrapper

    def instrument(owner: Any, name: str, label: str, profiled: bool = False) -> None:
        """Time `owner.name` where the run looks it up; fail loudly once the code moves it."""
        if not hasattr(owner, name):
            sys.exit(f"{owner.__name__}.{name} is gone: point the driver's instrumentation at its new place")
        setattr(owner, name, timed(label, getattr(owner, name), profiled))

    instrument(TransformerEmbedder, "_hidden_states", "model forward")
    instrument(local, "embed", "embed (all, forward included)", profiled=True)  # the model step's caller
    instrument(task, "write_marker", "write the done markers")  # run_task writes them

    options = EmbedOptions(device="cpu", tokenize_workers=workers, threads=1, token_budget=budget)
    spec = TransformerSpec(model)
    config = RunConfig((str(corpus_path),), output, glove=None, transformer=spec, embed=options, overwrite=True)
    embedders = load_embedders(None, spec, options)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    summary = local.run(config, embedders)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    process_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(18)
    result.write_text(
        json.dumps(
            {
                "wall": wall,
                "process_cpu": process_cpu,
                "tokens": summary.subword_tokens,
                "stages": dict(cpu),
                "profile": text.getvalue(),
            }
        )
    )


# -- the parent ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to compare")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--token-budget",
        type=int,
        help="padded positions per batch (default: batchembed's automatic choice; on this CPU 2,048, where "
        "the tiny model runs fastest: 65,536, about a piece a batch as on a GPU, made its forward 1.5x slower)",
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "batchembed-bench-feed")
    parser.add_argument("--driver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver is not None:
        return driver_main(
            args.driver, args.corpus, args.model, args.workdir / "out" / "driver", args.result, args.token_budget
        )

    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    info = common.machine()
    common.progress("corpus and tiny model")
    path = corpus.ensure(args.pairs, args.seed, work)
    model = str(workload.tiny_model(work / "tiny-bert"))
    texts = workload.distinct_sentences(path)
    sentences_file = work / f"sentences-{args.pairs}-{args.seed}.json"
    sentences_file.write_text(json.dumps(texts))
    counts = [int(w) for w in args.workers.split(",")]
    script = str(Path(__file__).resolve())
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}

    pipeline_s: dict[int, list[float]] = defaultdict(list)
    pipeline_wall: dict[int, list[float]] = defaultdict(list)
    bare_s: dict[int, list[float]] = defaultdict(list)
    tokens = subwords = 0
    for repeat in range(args.repeats):
        for w in counts:
            common.progress(f"repeat {repeat + 1}/{args.repeats}: pipeline, {w} workers")
            output = work / "out" / f"pipeline-{w}"
            options = ["--no-glove", "--transformer", model, "--device", "cpu", "--tokenize-workers", str(w)]
            options += ["--threads", "1"]  # as on a GPU: the model's process drives, the cores prepare
            options += ["--token-budget", str(args.token_budget)] if args.token_budget else []
            run = common.run_batchembed(path, output, options, work / "logs" / f"pipeline-{w}.log", env)
            summary = common.read_summary(output)
            pipeline_s[w].append(summary["seconds"])
            pipeline_wall[w].append(run.wall_s)
            tokens = summary["subword_tokens"]

            common.progress(f"repeat {repeat + 1}/{args.repeats}: bare tokenizers, {w} processes")
            bare = workload.measure_bare(sentences_file, model, w, work)
            bare_s[w].append(bare["seconds"])
            subwords = bare["subwords"]

    drivers: dict[int, dict[str, Any]] = {}
    outside_runs: dict[int, list[float]] = defaultdict(list)  # CPU-s per million tokens, every repeat
    for repeat, w in [(r, w) for r in range(args.repeats) for w in counts]:
        common.progress(f"repeat {repeat + 1}/{args.repeats}: driver process, {w} workers, measured from inside")
        result = work / f"driver-{w}.json"
        cmd = [
            sys.executable,
            script,
            "--driver",
            str(w),
            "--corpus",
            str(path),
            "--model",
            model,
            "--workdir",
            str(work),
            "--result",
            str(result),
            *(["--token-budget", str(args.token_budget)] if args.token_budget else []),
        ]
        common.check(common.run_child(cmd, work / "logs" / f"driver-{w}.log", env), "driver")
        measured = json.loads(result.read_text())
        outside_runs[w].append(
            (measured["process_cpu"] - measured["stages"].get("model forward", 0.0)) / measured["tokens"] * 1e6
        )
        drivers[w] = measured  # the breakdown below is the last repeat's

    n = len(texts)
    print(common.command_line(__file__))
    print(common.machine_markdown(info) + "\n")
    print(
        f"{args.pairs:,} pairs, {n:,} distinct sentences, {subwords:,} subword tokens (bare count), "
        f"{tokens:,} model positions embedded by the pipeline; {args.repeats} interleaved repeats, medians.\n"
    )
    print("| contender | s (median) | runs | distinct sentences/s | subword tokens/s |")
    print("|---|---:|---|---:|---:|")
    for w in counts:
        p, b = common.median(pipeline_s[w]), common.median(bare_s[w])
        print(
            f"| pipeline, {w} workers (job s; wall {common.median(pipeline_wall[w]):.2f}) | {p:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in pipeline_s[w])} | {n / p:,.0f} | {tokens / p:,.0f} |"
        )
        print(
            f"| bare tokenizers, {w} processes | {b:.2f} | {', '.join(f'{x:.2f}' for x in bare_s[w])} | "
            f"{n / b:,.0f} | {subwords / b:,.0f} |"
        )
    print("\n| figure | value | target |\n|---|---:|---:|")
    for w in counts:
        ratio = common.median(bare_s[w]) / common.median(pipeline_s[w])
        print(f"| pipeline / bare tokenizers, {w} workers (speed) | {ratio:.2f} | >= 0.85 |")
    if len(counts) > 1:
        lo, hi = min(counts), max(counts)
        scaling = common.median(pipeline_s[lo]) / common.median(pipeline_s[hi])
        print(f"| pipeline {hi} workers vs {lo} (speed) | {scaling:.2f}x | >= 1.8x |")
        ceiling = common.median(bare_s[lo]) / common.median(bare_s[hi])
        print(f"| bare {hi} processes vs {lo} (speed) | {ceiling:.2f}x | (the machine's own ceiling) |")
    for w, runs in outside_runs.items():
        print(
            f"| driver CPU-s per million subword tokens outside the forward, {w} workers "
            f"(runs {', '.join(f'{x:.2f}' for x in runs)}) | {common.median(runs):.2f} | <= 0.5 |"
        )
    for w, d in drivers.items():
        print(
            f"\nWhere the driver process's CPU goes, {w} workers, last repeat ({d['tokens']:,} tokens, "
            f"wall {d['wall']:.2f} s, torch threads 1):\n"
        )
        print("| stage (thread CPU s) | s | per million tokens |\n|---|---:|---:|")
        stages = dict(d["stages"])
        other = "other: reading input, handing pieces to the workers and back, bookkeeping (process CPU - the above)"
        stages[other] = d["process_cpu"] - sum(v for k, v in stages.items() if k != "model forward")
        stages["process CPU, all threads"] = d["process_cpu"]
        for name, value in stages.items():
            print(f"| {name} | {value:.2f} | {value / d['tokens'] * 1e6:.2f} |")
        print("\nModel thread, cProfile by own time (top 18):\n\n```")
        print("\n".join(line for line in d["profile"].splitlines() if line.strip())[:6000])
        print("```")


if __name__ == "__main__":
    main()
