"""`batchembed evaluate`: threshold tuning, both WiC layouts, Spearman, and the CLI's exit codes.

All data is synthetic and written to tmp_path; nothing here needs the real WiC files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from batchembed.cli import app
from batchembed.errors import InputError, UsageError
from batchembed.evaluation import EvalConfig, evaluate, format_table, load_tasks
from batchembed.evaluation.data import read_binary, read_superglue, read_wic
from batchembed.evaluation.embed import embed_splits
from batchembed.evaluation.scoring import accuracy, classify, majority_label, spearman, tune_threshold

runner = CliRunner()


# -- synthetic files -----------------------------------------------------------------------

# (target, i-j, sentence1, sentence2, label): same sense is the same surface form here, so a
# static model (distance 0 for an identical word) separates the classes perfectly.
WIC_DEV = [
    ("bank", "3-1", "he sat on bank of the river", "the bank was closed", "T"),
    ("light", "1-3", "the light was bright", "she saw the light", "T"),
    ("play", "2-1", "the children play in the park", "they played at school", "F"),
    ("cell", "4-3", "the prisoner stayed in cell", "call me on cells", "F"),
]
WIC_TEST = [
    ("mouse", "1-4", "the mouse ran under the sofa", "click the left button mouse", "T"),
    ("car", "1-2", "the car would not start", "an automobile car", "T"),
    ("read", "2-1", "i could read", "she reads", "F"),
    ("xylo", "0-0", "xylo room", "xylo night", "F"),  # the fake embedders have no vector for x-words
]


def write_wic(directory: Path, name: str, rows: list[tuple[str, ...]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / f"{name}.data.txt"
    data.write_text("".join(f"{w}\tN\t{ij}\t{s1}\t{s2}\n" for w, ij, s1, s2, _ in rows), encoding="utf-8")
    (directory / f"{name}.gold.txt").write_text("".join(f"{row[-1]}\n" for row in rows), encoding="utf-8")
    return data


def superglue_record(word: str, s1: str, s2: str, label: bool) -> dict:
    start1, start2 = s1.index(word), s2.index(word)
    return {
        "word": word,
        "sentence1": s1,
        "sentence2": s2,
        "start1": start1,
        "end1": start1 + len(word),
        "start2": start2,
        "end2": start2 + len(word),
        "label": label,
        "idx": 0,
    }


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def wic_files(tmp_path: Path) -> tuple[Path, Path]:
    return write_wic(tmp_path / "dev", "dev", WIC_DEV), write_wic(tmp_path / "test", "test", WIC_TEST)


# -- threshold classifier ------------------------------------------------------------------


def test_threshold_separates_known_classes() -> None:
    distances = np.array([0.1, 0.2, 0.4, 0.3, 0.9, 1.0])
    labels = np.array([True, True, False, True, False, False])
    threshold = tune_threshold(distances, labels)
    assert threshold == pytest.approx(0.35)  # midpoint between the last T (0.3) and the first F (0.4)
    assert accuracy(classify(distances, threshold, False), labels) == 1.0


def test_threshold_never_cuts_between_equal_distances() -> None:
    distances = np.array([0.5, 0.5, 0.5, 1.0])
    labels = np.array([True, False, True, False])
    assert tune_threshold(distances, labels) == pytest.approx(0.75)


def test_threshold_edges_and_nulls() -> None:
    d = np.array([0.2, 0.4, np.nan])
    assert tune_threshold(d, np.array([True, True, False])) == pytest.approx(0.4)  # everything same
    assert tune_threshold(d, np.array([False, False, True])) < 0.2  # everything different
    assert np.isnan(tune_threshold(np.array([np.nan, np.nan]), np.array([True, False])))


@pytest.mark.parametrize("seed", range(5))
def test_threshold_is_the_brute_force_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    distances = rng.integers(0, 12, size=60).astype(float) / 4  # many ties
    labels = rng.random(60) < 0.6 - distances / 10
    best = max(accuracy(distances <= t, labels) for t in [-1.0, *np.unique(distances)])
    assert accuracy(classify(distances, tune_threshold(distances, labels), False), labels) == best


def test_null_distances_get_the_fallback_label() -> None:
    predicted = classify(np.array([0.1, np.nan, 0.9]), 0.5, fallback=True)
    assert predicted.tolist() == [True, True, False]
    assert majority_label(np.array([True, False])) is False  # a tie goes to F
    assert majority_label(np.array([True, True, False])) is True


# -- file layouts --------------------------------------------------------------------------


def test_read_wic_finds_gold_beside_data(wic_files: tuple[Path, Path]) -> None:
    split = read_wic(wic_files[0])
    assert split.gold == wic_files[0].with_name("dev.gold.txt")
    assert (split.layout, split.tokenizer, split.mode.value) == ("wic", "whitespace", "indices")
    assert split.targets[0] == ("3", "1") and split.sentence2[1] == "she saw the light"
    assert split.labels == [True, True, False, False]


def test_read_wic_errors_name_file_and_line(tmp_path: Path) -> None:
    data = write_wic(tmp_path, "bad", WIC_DEV)
    (tmp_path / "bad.gold.txt").write_text("T\nT\nX\nF\n")
    with pytest.raises(InputError, match=r"bad.gold.txt:3: gold label must be T or F, got 'X'"):
        read_wic(data)
    (tmp_path / "bad.gold.txt").write_text("T\nF\n")
    with pytest.raises(InputError, match=r"bad.gold.txt: 2 labels for 4 pairs"):
        read_wic(data)
    data.write_text("bank\tN\t1-2\tonly one sentence\n")
    with pytest.raises(InputError, match=r"bad.data.txt:1: expected 5 tab-separated fields"):
        read_wic(data)
    with pytest.raises(UsageError, match="gold file"):
        read_wic(tmp_path / "pairs.tsv")
    data.write_text("")
    (tmp_path / "bad.gold.txt").write_text("")
    with pytest.raises(InputError, match=r"bad.data.txt: no labelled pairs"):
        read_binary(data)


def test_read_superglue(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "val.jsonl",
        [
            superglue_record("bank", "He sat on the bank.", "The bank was closed.", True),
            superglue_record("play", "Children play outside.", "A play at the theatre.", False),
        ],
    )
    split = read_binary(path)
    assert (split.layout, split.tokenizer, split.mode.value) == ("superglue", "flair", "spans")
    assert split.targets[0] == (14, 18, 4, 8) and split.labels == [True, False]


def test_read_superglue_needs_labels(tmp_path: Path) -> None:
    record = superglue_record("bank", "the bank", "a bank", True)
    del record["label"]
    good = superglue_record("bank", "the bank", "a bank", True)
    with pytest.raises(InputError, match=r"test.jsonl:2: missing field 'label'"):
        read_superglue(write_jsonl(tmp_path / "test.jsonl", [good, record]))
    with pytest.raises(InputError, match=r"x.jsonl:1: field 'label' must be true or false, got 1"):
        read_superglue(write_jsonl(tmp_path / "x.jsonl", [superglue_record("bank", "the bank", "a bank", 1)]))


# -- through the pipeline ------------------------------------------------------------------


def test_wic_end_to_end_with_fake_embedders(wic_files: tuple[Path, Path], fake_embedders: list) -> None:
    config = EvalConfig(dev=wic_files[0], test=wic_files[1])
    result = evaluate(load_tasks(config), fake_embedders, config)
    by_column = {(r.model, r.metric): r for r in result.binary}
    static = by_column[("static", "cosine")]
    # identical surface forms (T) are at distance 0, inflected ones (F) are not: a perfect split
    assert static.dev_accuracy == 1.0 and static.threshold is not None and static.threshold > 0
    assert static.test_accuracy == 1.0  # the x-word pair has no vector: fallback F, which is right
    assert (static.dev_null, static.test_null) == (0, 1)
    assert result.null_fallback == "F"
    assert result.splits["test"]["status_counts"] == {"ok": 3, "static_oov;ctx_oov": 1}
    text = format_table(result)
    assert "Null distances are classified F" in text and "static" in text and "100.0" in text


def test_dev_and_test_go_through_the_models_once(
    tmp_path: Path, wic_files: tuple[Path, Path], fake_embedders: list
) -> None:
    config = EvalConfig(dev=wic_files[0], test=wic_files[1])
    tasks = load_tasks(config)
    assert tasks.dev is not None and tasks.test is not None
    dev, test = embed_splits([tasks.dev, tasks.test], fake_embedders)
    assert [e.calls for e in fake_embedders] == [1, 1]  # one shard holds both splits
    # the very values `batchembed run --tokenizer whitespace` writes for the same pairs
    from batchembed.config import RunConfig
    from batchembed.engines.local import run as run_local
    from batchembed.results.read import read_output

    rows = WIC_DEV + WIC_TEST
    pacsv.write_csv(
        pa.table(
            {
                "sentence1": [r[2] for r in rows],
                "sentence2": [r[3] for r in rows],
                "index1": [int(r[1].split("-")[0]) for r in rows],
                "index2": [int(r[1].split("-")[1]) for r in rows],
            }
        ),
        tmp_path / "pairs.csv",
    )
    run_local(RunConfig((str(tmp_path / "pairs.csv"),), tmp_path / "out", tokenizer="whitespace"), fake_embedders)
    written = read_output(str(tmp_path / "out"))
    for column in ("static_euclidean", "ctx_cosine"):
        expected = written.column(column).to_numpy(zero_copy_only=False)
        np.testing.assert_array_equal(np.concatenate([dev.values[column], test.values[column]]), expected)


def test_superglue_end_to_end_with_tiny_models(tmp_path: Path, tiny_embedders: list) -> None:
    records = [
        superglue_record("bank", "He sat on the bank of the river.", "The bank raised its rates.", False),
        superglue_record("light", "The light was too bright.", "She saw light in the room.", True),
        superglue_record("play", "The children play in the park.", "We saw a play at the theatre.", False),
        superglue_record("cell", "The prisoner stayed in his cell.", "Call my cell tonight.", False),
    ]
    dev = write_jsonl(tmp_path / "dev.jsonl", records)
    bad = dict(records[0], start1=15, end1=17)  # cuts through "bank": a status row, classified by fallback
    test = write_jsonl(tmp_path / "test.jsonl", [bad, *records[1:]])
    config = EvalConfig(dev=dev, test=test)
    result = evaluate(load_tasks(config), tiny_embedders, config)
    assert [(r.model, r.metric) for r in result.binary] == [
        ("glove", "euclidean"),
        ("glove", "cosine"),
        ("bert", "euclidean"),
        ("bert", "cosine"),
    ]
    for r in result.binary:
        assert r.threshold is not None and r.dev_null == 0 and r.test_null == 1
        assert 0.0 <= r.test_accuracy <= 1.0
    assert result.splits["test"]["status_counts"]["span_not_on_token_boundary"] == 1
    data = result.to_dict()
    assert data["binary"]["null_fallback"]["label"] == "F" and json.dumps(data)


# -- graded similarity ---------------------------------------------------------------------


def test_spearman_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    distances, scores = rng.random(40), rng.random(40) * 10
    distances[[3, 7]] = np.nan
    rho, p = spearman(distances, scores)
    keep = ~np.isnan(distances)
    expected = spearmanr(-distances[keep], scores[keep])
    assert rho == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)
    assert spearman(np.zeros(5), scores[:5]) == (None, None)  # constant distances: undefined


def test_graded_file_end_to_end(tmp_path: Path, fake_embedders: list) -> None:
    table = pa.table(
        {
            "sentence1": ["the bank of the river", "a happy morning", "the car", "xylo room", "the dark room"],
            "sentence2": ["money in the bank", "a sad night", "an automobile", "xylo night", "the light room"],
            "word1": ["bank", "happy", "car", "xylo", "dark"],
            "word2": ["bank", "sad", "automobile", "xylo", "light"],
            "score": [3.0, 2.0, 9.5, 5.0, 1.0],
        }
    )
    pacsv.write_csv(table, tmp_path / "scws.csv")
    config = EvalConfig(similarity=(str(tmp_path / "scws.csv"),))
    result = evaluate(load_tasks(config), fake_embedders, config)
    assert result.similarity is not None and result.similarity["pairs"] == 5
    ctx = next(r for r in result.graded if (r.model, r.metric) == ("ctx", "cosine"))
    assert (ctx.pairs, ctx.null) == (4, 1)
    # the same rho from the distances `batchembed run` writes for this file
    from batchembed.config import RunConfig
    from batchembed.engines.local import run as run_local
    from batchembed.results.read import read_output

    run_local(RunConfig(inputs=(str(tmp_path / "scws.csv"),), output=tmp_path / "out"), fake_embedders)
    written = read_output(str(tmp_path / "out")).column("ctx_cosine").to_numpy(zero_copy_only=False)
    scores = table.column("score").to_numpy()
    keep = ~np.isnan(written)
    assert keep.tolist() == [True, True, True, False, True]
    assert ctx.spearman == pytest.approx(spearmanr(-written[keep], scores[keep]).statistic)
    assert "spearman" in format_table(result)


def test_graded_file_needs_the_score_column(tmp_path: Path) -> None:
    pacsv.write_csv(pa.table({"sentence1": ["a"], "sentence2": ["b"], "sim": [1.0]}), tmp_path / "s.csv")
    with pytest.raises(InputError, match=r"s.csv: missing score column 'score'; name it with score_column"):
        load_tasks(EvalConfig(similarity=(str(tmp_path / "s.csv"),)))
    pacsv.write_csv(pa.table({"sentence1": ["a"], "sentence2": ["b"], "score": ["high"]}), tmp_path / "t.csv")
    with pytest.raises(InputError, match=r"t.csv: column 'score', data row 1: the score is 'high', not a number"):
        load_tasks(EvalConfig(similarity=(str(tmp_path / "t.csv"),)))
    (tmp_path / "u.csv").write_text("sentence1,sentence2,score\na,b,1\nc,d,\n")
    with pytest.raises(InputError, match=r"u.csv: column 'score', data row 2: the score is empty"):
        load_tasks(EvalConfig(similarity=(str(tmp_path / "u.csv"),)))


def test_graded_parquet_and_csv_agree(tmp_path: Path, fake_embedders: list) -> None:
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "sentence1": ["the bank of the river", "a happy morning", "the car"],
            "sentence2": ["money in the bank", "a sad night", "an automobile"],
            "word1": ["bank", "happy", "car"],
            "word2": ["bank", "sad", "automobile"],
            "score": [3, 2, 9],
        }
    )
    pq.write_table(table, tmp_path / "g.parquet")
    pacsv.write_csv(table, tmp_path / "g.csv")
    results = []
    for name in ("g.parquet", "g.csv"):
        config = EvalConfig(similarity=(str(tmp_path / name),))
        tasks = load_tasks(config)
        assert tasks.scores is not None and tasks.scores.tolist() == [3.0, 2.0, 9.0]
        results.append([r.spearman for r in evaluate(tasks, fake_embedders, config).graded])
    assert results[0] == results[1]


# -- command line --------------------------------------------------------------------------


def test_cli_missing_file_is_an_input_error(tmp_path: Path, wic_files: tuple[Path, Path]) -> None:
    missing = tmp_path / "nope.data.txt"
    result = runner.invoke(app, ["evaluate", "--dev", str(missing), "--test", str(wic_files[1])])
    assert result.exit_code == 3
    assert result.output.strip().splitlines()[-1] == f"Error: {missing}: no such file"


def test_cli_usage_errors(wic_files: tuple[Path, Path]) -> None:
    assert runner.invoke(app, ["evaluate"]).exit_code == 2
    result = runner.invoke(app, ["evaluate", "--dev", str(wic_files[0])])
    assert result.exit_code == 2 and "give both --dev" in result.output


def test_cli_prints_table_and_writes_json(
    tmp_path: Path, wic_files: tuple[Path, Path], tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    out = tmp_path / "results" / "wic.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--dev",
            str(wic_files[0]),
            "--test",
            str(wic_files[1]),
            "--json",
            str(out),
            "--glove",
            str(tiny_glove_file),
            "--transformer",
            str(tiny_bert_dir),
            "--layers",
            "-1,-2",
            "--subtoken-pooling",
            "mean",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test acc %" in result.output
    data = json.loads(out.read_text())
    assert [r["model"] for r in data["binary"]["results"]] == ["glove", "glove", "bert", "bert"]
    assert data["models"][1]["layers"] == "-1,-2" and data["models"][1]["subtoken_pooling"] == "mean"
    assert data["binary"]["splits"]["test"]["pairs"] == 4
