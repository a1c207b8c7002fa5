"""Preparing and writing shards in worker processes gives exactly the in-process results, in order,
whatever the layout."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batchembed.config import EmbedOptions, RunConfig
from batchembed.engines.local import run as run_local
from batchembed.hardware import Layout, busy_cores, choose_layout
from batchembed.tokenize import flair_tokenize, many, remembering

TEXTS = [
    "The light in the room was too bright, and I couldn't read",
    "She always radiates light and joy to everyone around her",
    "Zero\u200bwidth, emoji 🙂 and ‏RTL עברית text",
    "",
    "   ",
    "e\u0301 combining marks",
] * 32 + [f"sentence number {k} ends here." for k in range(300)]


@pytest.mark.parametrize("limit", [None, 3])
def test_remembering_tokenizer_equals_plain_tokenization(limit) -> None:
    """Repeated sentences come from memory, the memory starts over when full: same tokens either way."""
    tokenize_many = remembering(flair_tokenize, limit)
    expected = many(flair_tokenize)(TEXTS)
    assert tokenize_many(TEXTS) == expected
    assert tokenize_many(TEXTS[::-1]) == expected[::-1]
    again = tokenize_many(TEXTS[:2])
    assert again == expected[:2]
    if limit is None:
        assert again[0] is tokenize_many(TEXTS[:1])[0]  # remembered, not tokenized again


def test_layout_by_device(monkeypatch) -> None:
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr("batchembed.hardware.usable_cores", lambda: 8)
    monkeypatch.setattr("batchembed.hardware.busy_cores", lambda: 3)
    assert choose_layout(torch.device("cpu")) == Layout(workers=1, threads=4)  # the cores others leave free
    monkeypatch.setattr("batchembed.hardware.usable_cores", lambda: 2)
    monkeypatch.setattr("batchembed.hardware.busy_cores", lambda: 0)
    assert choose_layout(torch.device("cpu")) == Layout(workers=0, threads=2)  # a small CPU: one process
    monkeypatch.setattr("batchembed.hardware.usable_cores", lambda: 8)
    monkeypatch.setattr("batchembed.hardware.busy_cores", lambda: 3)
    assert choose_layout(torch.device("cuda")) == Layout(workers=7, threads=1)  # every spare core feeds the GPU
    assert choose_layout(torch.device("cpu"), workers=0, threads=2) == Layout(0, 2)  # explicit settings win
    monkeypatch.setattr("batchembed.hardware.busy_cores", lambda: 20)
    assert choose_layout(torch.device("cpu")).threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_layout(torch.device("cpu")).threads is None  # the environment's setting stays
    assert busy_cores(samples=2, interval=0) >= 0


def _pairs(tmp_path):
    import pyarrow as pa

    first = [t for t in TEXTS[::2]]
    second = [flair_tokenize(t).text[::-1] if k % 3 else t for k, t in enumerate(TEXTS[1::2])]
    pq.write_table(pa.table({"sentence1": first, "sentence2": second}), tmp_path / "pairs.parquet")
    return first


def _run(tmp_path, embedders, name: str, **options):
    out = tmp_path / name
    config = RunConfig((str(tmp_path / "pairs.parquet"),), out, shard_rows=97, embed=EmbedOptions(**options))
    run_local(config, embedders)
    return pq.read_table(out).sort_by([("source_row", "ascending"), ("token_index_1", "ascending")])


@pytest.mark.slow  # spawns worker processes: seconds each
def test_run_output_is_identical_with_workers(tmp_path, fake_embedders, monkeypatch) -> None:
    first = _pairs(tmp_path)
    tables = [_run(tmp_path, fake_embedders, f"out{w}", tokenize_workers=w, threads=1) for w in (0, 1, 2)]
    monkeypatch.setattr("batchembed.stages.task.PIECE_PAIRS", 10)  # shards of 97 pairs in 10 pieces
    tables += [_run(tmp_path, fake_embedders, f"pieces{w}", tokenize_workers=w, threads=1) for w in (0, 2)]
    assert tables[0].num_rows > len(first)
    for table in tables[1:]:
        assert table.equals(tables[0])


@pytest.mark.slow  # spawns worker processes: seconds each
def test_with_workers_the_models_process_writes_no_part(tmp_path, fake_embedders, monkeypatch) -> None:
    """Writing runs in a writer process: writing a part is forbidden in this process, and the run
    still ends with every row (the spawned processes do not see the patch)."""
    _pairs(tmp_path)
    expected = _run(tmp_path, fake_embedders, "here", tokenize_workers=0, threads=1)

    def forbidden(*args, **kwargs):
        raise AssertionError("the model's process wrote a part")

    monkeypatch.setattr("batchembed.stages.write.PartWriter.__init__", forbidden)
    assert _run(tmp_path, fake_embedders, "workers", tokenize_workers=2, threads=1).equals(expected)
    with pytest.raises(AssertionError, match="wrote a part"):  # the patch bites where the job writes
        _run(tmp_path, fake_embedders, "again-here", tokenize_workers=0, threads=1)


@pytest.mark.slow  # spawns worker processes: seconds each
def test_real_models_identical_whatever_workers_and_budget(tmp_path, tiny_embedders, monkeypatch) -> None:
    """Same rows, words, statuses and distances (to float tolerance) for 0, 1, 2 workers and any budget."""
    import numpy as np

    _pairs(tmp_path)
    bert = tiny_embedders[1]
    runs = []
    for workers, budget, piece in ((0, 256, 0), (1, 64, 0), (2, 100_000, 0), (2, 16, 0), (2, 256, 30)):
        bert.token_budget = budget
        monkeypatch.setattr("batchembed.stages.task.PIECE_PAIRS", piece or 1024)
        runs.append(_run(tmp_path, tiny_embedders, f"w{workers}-{budget}-{piece}", tokenize_workers=workers, threads=1))
    bert.token_budget = 256
    reference = runs[0]
    distances = [c for c in reference.column_names if c.endswith(("_euclidean", "_cosine"))]
    assert reference.num_rows > 0 and reference.column("bert_cosine").null_count < reference.num_rows
    for table in runs[1:]:
        assert table.drop_columns(distances).equals(reference.drop_columns(distances))
        for column in distances:
            a = table.column(column).to_numpy(zero_copy_only=False)
            b = reference.column(column).to_numpy(zero_copy_only=False)
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_prepared_shard_round_trips_through_pickle(tiny_embedders) -> None:
    import numpy as np

    from batchembed.io.reader import InputFile, InputShard
    from batchembed.stages.prepare import prepare
    from batchembed.targets import TargetMode

    shard = InputShard(
        InputFile(Path("x.csv"), "csv"),
        0,
        1,
        TargetMode.SHARED,
        ["a", "b", "c"],
        [TEXTS[0], None, "light"],
        [TEXTS[1], "x", "dark"],
        [(), (), ()],
    )
    prepared = prepare(shard, many(flair_tokenize), [e.preparer() for e in tiny_embedders])
    import pickle

    back = pickle.loads(pickle.dumps(prepared))  # how a piece travels to a worker or a Ray model actor
    assert back.shard_id == prepared.shard_id and back.pairs == 3 and back.requests == prepared.requests
    for name in ("pair_row", "sentence_1", "token_1", "request_1", "request_2", "row_status"):
        np.testing.assert_array_equal(getattr(back, name), getattr(prepared, name))
