"""Tokenizing in worker processes gives exactly the in-process tokens, in order, and the same output."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from batchembed.config import EmbedOptions, RunConfig
from batchembed.engines.local import run as run_local
from batchembed.tokenize import flair_tokenize, get_tokenizer, many
from batchembed.workers import MIN_TEXTS_PER_TASK, TokenizerPool, automatic_workers

TEXTS = [
    "The light in the room was too bright, and I couldn't read",
    "She always radiates light and joy to everyone around her",
    "Zero\u200bwidth, emoji 🙂 and ‏RTL עברית text",
    "",
    "   ",
    "e\u0301 combining marks",
] * (MIN_TEXTS_PER_TASK // 2) + [f"sentence number {k} ends here." for k in range(300)]


@pytest.mark.parametrize("name", ["flair", "whitespace"])
def test_pool_equals_in_process_tokenization(name) -> None:
    expected = many(get_tokenizer(name))(TEXTS)
    with TokenizerPool(name, 2) as pool:
        assert pool(TEXTS) == expected
        assert pool(TEXTS[:3]) == expected[:3]  # few texts: done in this process
        assert pool([]) == []


def test_automatic_workers_only_on_gpu() -> None:
    import torch

    assert automatic_workers(torch.device("cpu")) == 0
    assert 0 <= automatic_workers(torch.device("cuda")) <= 8


def test_run_output_is_identical_with_workers(tmp_path, fake_embedders) -> None:
    import pyarrow as pa

    first = [t for t in TEXTS[::2]]
    second = [flair_tokenize(t).text[::-1] if k % 3 else t for k, t in enumerate(TEXTS[1::2])]
    pq.write_table(pa.table({"sentence1": first, "sentence2": second}), tmp_path / "pairs.parquet")
    tables = []
    for workers in (0, 2):
        out = tmp_path / f"out{workers}"
        config = RunConfig(
            (str(tmp_path / "pairs.parquet"),), out, shard_rows=97, embed=EmbedOptions(tokenize_workers=workers)
        )
        run_local(config, fake_embedders)
        tables.append(pq.read_table(out).sort_by([("source_row", "ascending"), ("token_index_1", "ascending")]))
    assert tables[0].num_rows > len(first)
    assert tables[0].equals(tables[1])
