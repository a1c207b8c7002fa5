"""`batchembed uses`: each use embedded once, every word's APD, PRT and spread as a float64
reference computes them from the same vectors, statuses instead of made-up zeros, a resume after
kill -9 equal to a fresh run, the DWUG layout read as published, reproducible pair samples."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchembed

DWUG = Path(__file__).parent / "data" / "dwug"
SENTENCES = [  # (sentence, target word, grouping); every word is in the tiny models' vocabulary
    ("the light in the room was too bright", "light", "early"),
    ("she radiates light and joy to everyone", "light", "early"),
    ("a dark room after the last night", "room", "early"),
    ("the children play in the park after school", "park", "early"),
    ("the light was dark and sad", "light", "late"),
    ("we walked past the light on the shore", "light", "late"),
    ("the light would not start in the morning", "light", "late"),
    ("the room was happy", "room", "late"),
    ("his room ran under the bank", "room", "late"),
    ("the children play in the park", "park", "late"),
]


def _uses_csv(path: Path, rows=SENTENCES, repeat: int = 1) -> Path:
    lines = ["id,sentence,start,end,lemma,grouping"]
    for k, (sentence, word, grouping) in enumerate(rows * repeat):
        start = sentence.index(word)
        lines.append(f"u{k},{sentence},{start},{start + len(word)},{word},{grouping}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _models(tiny_glove_file: Path, tiny_bert_dir: Path) -> dict:
    return {"glove": str(tiny_glove_file), "transformer": str(tiny_bert_dir), "tokenizer": "whitespace"}


def _pairwise(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if metric == "euclidean":
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    unit_a = a / np.linalg.norm(a, axis=1, keepdims=True)
    unit_b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 1.0 - unit_a @ unit_b.T


def _distance(u: np.ndarray, v: np.ndarray, metric: str) -> float:
    return float(_pairwise(u[None, :], v[None, :], metric)[0, 0])


def test_every_measure_equals_a_float64_reference_from_the_same_vectors(
    tmp_path: Path, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    out = tmp_path / "out"
    summary = batchembed.uses(
        _uses_csv(tmp_path / "uses.csv"), out, vectors=True, **_models(tiny_glove_file, tiny_bert_dir)
    )
    assert summary.exit_code == 0 and summary.use_counts == {"ok": len(SENTENCES)}
    vectors = pq.read_table(out / "vectors")
    assert vectors.num_rows == len(SENTENCES)  # each use once: its target embedded once per model
    words = batchembed.read_output(out)
    assert sorted(words.column("lemma").to_pylist()) == ["light", "park", "room"]
    for row in words.to_pylist():
        mine = [r for r in vectors.to_pylist() if r["lemma"] == row["lemma"]]
        early = [r for r in mine if r["grouping"] == row["grouping_1"]]
        late = [r for r in mine if r["grouping"] == row["grouping_2"]]
        assert (row["uses_1"], row["uses_2"]) == (len(early), len(late))
        for model in ("glove", "bert"):
            a = np.array([r[model] for r in early])
            b = np.array([r[model] for r in late])
            for metric in ("euclidean", "cosine"):
                prefix = f"{model}_{metric}"
                np.testing.assert_allclose(row[f"{prefix}_apd"], _pairwise(a, b, metric).mean(), rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(
                    row[f"{prefix}_prt"], _distance(a.mean(0), b.mean(0), metric), rtol=1e-5, atol=1e-6
                )
                for side, own in (("1", a), ("2", b)):
                    if len(own) < 2:
                        assert row[f"{prefix}_apd_{side}"] is None  # undefined, never 0
                        continue
                    within = _pairwise(own, own, metric)[np.triu_indices(len(own), 1)]
                    np.testing.assert_allclose(row[f"{prefix}_apd_{side}"], within.mean(), rtol=1e-5, atol=1e-6)


def test_a_word_without_groupings_gets_its_own_apd_and_spread(
    tmp_path: Path, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    rows = [(s, w, "") for s, w, _ in SENTENCES]
    src = tmp_path / "uses.csv"
    _uses_csv(src, rows)
    out = tmp_path / "out"
    batchembed.uses(src, out, vectors=True, **_models(tiny_glove_file, tiny_bert_dir))
    words = {r["lemma"]: r for r in batchembed.read_output(out).to_pylist()}
    vectors = pq.read_table(out / "vectors").to_pylist()
    light = np.array([r["bert"] for r in vectors if r["lemma"] == "light"], dtype=np.float64)
    row = words["light"]
    assert row["grouping_1"] is None and row["grouping_2"] is None and row["uses_1"] == len(light)
    within = _pairwise(light, light, "euclidean")[np.triu_indices(len(light), 1)]
    np.testing.assert_allclose(row["bert_euclidean_apd"], within.mean(), rtol=1e-5)
    centre = light.mean(0)
    np.testing.assert_allclose(
        row["bert_euclidean_spread"], np.linalg.norm(light - centre, axis=1).mean(), rtol=1e-5, atol=1e-6
    )


def test_one_use_a_missing_grouping_and_a_target_not_found_are_statuses_never_zeros(
    tmp_path: Path, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    rows = [
        ("the light in the room was too bright", "light", "early"),
        ("she radiates light and joy", "light", "late"),
        ("the light was dark", "light", "late"),
        ("the children play in the park", "park", "early"),  # park: no use in "late"
        ("the park after school", "park", "early"),
    ]
    src = _uses_csv(tmp_path / "uses.csv", rows)
    with src.open("a", encoding="utf-8") as extra:
        extra.write("u9,the room was happy,40,44,room,late\n")  # a target past the sentence's end
        extra.write("u10,the bank was happy,4,8,,late\n")  # no lemma: keyed by its word, lowercased
    out = tmp_path / "out"
    summary = batchembed.uses(src, out, **_models(tiny_glove_file, tiny_bert_dir))
    assert summary.exit_code == 6  # uses with a status
    assert summary.use_counts["span_out_of_range"] == 1 and summary.use_counts["ok"] == 6
    words = {r["lemma"]: r for r in batchembed.read_output(out).to_pylist()}
    light, park, bank = words["light"], words["park"], words["bank"]
    assert "one_use_1" in light["status"] and light["bert_cosine_apd_1"] is None
    assert light["bert_cosine_apd"] is not None and light["bert_cosine_apd_2"] is not None
    assert "no_uses_2" in park["status"] and park["uses_2"] == 0
    assert park["bert_cosine_apd"] is None and park["bert_cosine_prt"] is None
    assert "no_uses_1" in bank["status"] and bank["uses_2"] == 1
    assert summary.word_counts["no_uses_2"] >= 1 and summary.word_counts["one_use_1"] >= 1


def test_a_dwug_corpus_is_read_as_published(tmp_path: Path, tiny_bert_dir: Path) -> None:
    out = tmp_path / "out"
    summary = batchembed.uses(
        DWUG, out, glove=None, transformer=str(tiny_bert_dir)
    )  # flair tokenizer: "lantern" in quotes
    assert summary.exit_code in (0, 6)
    words = {r["lemma"]: r for r in batchembed.read_output(out).to_pylist()}
    assert set(words) == {"harbour", "lantern", "orbit"}
    assert (words["lantern"]["uses_1"], words["lantern"]["uses_2"]) == (2, 3)
    assert "one_use_2" in words["orbit"]["status"]
    assert "no_uses_2" in words["harbour"]["status"] and words["harbour"]["bert_cosine_apd"] is None
    assert (words["lantern"]["grouping_1"], words["lantern"]["grouping_2"]) == ("1", "2")


def test_pair_samples_are_reproducible_from_their_seed(
    tmp_path: Path, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    src = _uses_csv(tmp_path / "uses.csv", repeat=3)
    models = _models(tiny_glove_file, tiny_bert_dir)

    def pairs(name: str, seed: int) -> pa.Table:
        batchembed.uses(src, tmp_path / name, pair_distances=True, max_pairs_per_word=4, seed=seed, **models)
        return pq.read_table(tmp_path / name / "pairs").select(["lemma", "use_id_1", "use_id_2", "bert_cosine"])

    first, again, other = pairs("a", 0), pairs("b", 0), pairs("c", 1)
    ids = ["lemma", "use_id_1", "use_id_2"]
    assert first.select(ids).equals(again.select(ids))  # the same pairs (their distances may differ in the
    np.testing.assert_allclose(  # last bits: torch's thread count follows the machine's load)
        first.column("bert_cosine").to_numpy(), again.column("bert_cosine").to_numpy(), rtol=1e-5, atol=1e-6
    )
    assert not first.select(ids).equals(other.select(ids))
    light = [r for r in pq.read_table(tmp_path / "a" / "pairs").to_pylist() if r["lemma"] == "light"]
    assert len(light) == 4 and all(r["sampled"] and r["pairs_total"] == 6 * 9 for r in light)
    assert len({(r["use_id_1"], r["use_id_2"]) for r in light}) == 4  # distinct pairs


def _assert_same_words(ours: pa.Table, theirs: pa.Table) -> None:
    """The same words table: every count, grouping and status equal, every measure within float
    tolerance (torch's thread count, chosen from the machine's load, may change the last bits)."""
    assert ours.schema == theirs.schema and ours.num_rows == theirs.num_rows
    for name in ours.column_names:
        a, b = ours.column(name).to_pylist(), theirs.column(name).to_pylist()
        if pa.types.is_floating(ours.schema.field(name).type):
            assert [x is None for x in a] == [y is None for y in b], name
            np.testing.assert_allclose(
                [x for x in a if x is not None], [y for y in b if y is not None], rtol=1e-5, atol=1e-6, err_msg=name
            )
        else:
            assert a == b, name


def _markers(out: Path) -> int:
    done = out.parent / f"{out.name}.batchembed" / "vectors.batchembed" / "done"
    return len(list(done.glob("*.json"))) if done.exists() else 0


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_fresh_run_s_words(
    tmp_path: Path, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    src = _uses_csv(tmp_path / "uses.csv", repeat=40)  # 400 uses, 80 shards of 5
    args = ["--glove", str(tiny_glove_file), "--transformer", str(tiny_bert_dir), "--tokenizer", "whitespace"]
    args += ["--shard-rows", "5", "--tokenize-workers", "0", "-q"]
    cli = [sys.executable, "-m", "batchembed", "uses", str(src)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = tmp_path / "out"
    proc = subprocess.Popen([*cli, "-o", str(out), *args], env=env)
    deadline = time.monotonic() + 120
    while _markers(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed_after = _markers(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < killed_after < 80, "the run must be killed part-way"
    assert subprocess.run([*cli, "-o", str(out), *args], env=env).returncode == 0
    assert subprocess.run([*cli, "-o", str(tmp_path / "fresh"), *args], env=env).returncode == 0
    _assert_same_words(batchembed.read_output(out), batchembed.read_output(tmp_path / "fresh"))


@pytest.mark.ray
def test_the_ray_engine_gives_the_local_engine_s_words(
    tmp_path: Path, s3_endpoint, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    ray = pytest.importorskip("ray")
    src = _uses_csv(tmp_path / "uses.csv")
    models = _models(tiny_glove_file, tiny_bert_dir)
    batchembed.uses(src, tmp_path / "local", shard_rows=3, **models)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        summary = batchembed.uses(src, tmp_path / "ray", shard_rows=3, engine="ray", device="cpu", **models)
    finally:
        if started:
            ray.shutdown()
    assert summary.exit_code == 0
    _assert_same_words(batchembed.read_output(tmp_path / "ray"), batchembed.read_output(tmp_path / "local"))


def test_uses_are_checked_before_a_model_loads(tmp_path: Path) -> None:
    src = tmp_path / "uses.csv"
    src.write_text("sentence,lemma\nthe light,light\n", encoding="utf-8")
    with pytest.raises(batchembed.InputError, match="no target column"):
        batchembed.uses(src, tmp_path / "out", glove="/nowhere/glove.txt")
    assert not (tmp_path / "out").exists()


def test_all_pairs_are_listed_below_the_cap(tmp_path: Path, tiny_glove_file: Path, tiny_bert_dir: Path) -> None:
    src = _uses_csv(tmp_path / "uses.csv")
    batchembed.uses(src, tmp_path / "out", pair_distances=True, **_models(tiny_glove_file, tiny_bert_dir))
    pairs = pq.read_table(tmp_path / "out" / "pairs").to_pylist()
    light = [(r["use_id_1"], r["use_id_2"]) for r in pairs if r["lemma"] == "light"]
    early = [f"u{k}" for k, (_, w, g) in enumerate(SENTENCES) if w == "light" and g == "early"]
    late = [f"u{k}" for k, (_, w, g) in enumerate(SENTENCES) if w == "light" and g == "late"]
    assert sorted(light) == sorted(itertools.product(early, late))
    assert not any(r["sampled"] for r in pairs)


def test_evaluate_scores_graded_change_per_model_metric_and_measure(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from typer.testing import CliRunner

    from batchembed.cli import app

    gold = DWUG / "stats" / "opt" / "stats_groupings.csv"
    args = ["evaluate", "--uses", str(DWUG), "--change", str(gold), "--no-glove", "--transformer", str(tiny_bert_dir)]
    result = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "change.json")])
    assert result.exit_code == 0, result.output
    assert "Graded change" in result.output
    import json

    change = json.loads((tmp_path / "change.json").read_text())["change"]
    records = change["results"]
    assert {(r["model"], r["metric"], r["measure"]) for r in records} == {
        ("bert", metric, measure) for metric in ("euclidean", "cosine") for measure in ("apd", "prt")
    }
    assert all(set(r) == {"model", "metric", "measure", "spearman", "words"} for r in records)
    assert all(r["words"] == 2 for r in records)  # harbour has no use in grouping 2: no measure, left out


def test_the_uses_command_prints_one_line_and_exits_by_the_uses_statuses(
    tmp_path: Path, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    from typer.testing import CliRunner

    from batchembed.cli import app

    src = _uses_csv(tmp_path / "uses.csv")
    args = ["uses", str(src), "-o", str(tmp_path / "out"), "--glove", str(tiny_glove_file)]
    result = CliRunner().invoke(app, [*args, "--transformer", str(tiny_bert_dir), "--tokenizer", "whitespace"])
    assert result.exit_code == 0, result.output
    assert f"10 uses measured (0 with a status), 3 word rows in {tmp_path / 'out'}" in result.output


def test_the_report_of_a_uses_output_ranks_its_words(
    tmp_path: Path, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    src = _uses_csv(tmp_path / "uses.csv")
    batchembed.uses(src, tmp_path / "out", pair_distances=True, **_models(tiny_glove_file, tiny_bert_dir))
    page = batchembed.report(tmp_path / "out", out=tmp_path / "report")
    html = Path(page).read_text(encoding="utf-8")
    assert "light" in html and "park" in html
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == [
        "distributions.png",
        "ranking.png",
        "statuses.png",
    ]


def test_a_uses_output_on_object_storage(
    tmp_path: Path, bucket: str, tiny_glove_file: Path, tiny_bert_dir: Path
) -> None:
    src = _uses_csv(tmp_path / "uses.csv")
    models = _models(tiny_glove_file, tiny_bert_dir)
    summary = batchembed.uses(src, f"s3://{bucket}/uses", pair_distances=True, **models)
    assert summary.exit_code == 0
    batchembed.uses(src, tmp_path / "local", pair_distances=True, **models)
    _assert_same_words(batchembed.read_output(f"s3://{bucket}/uses"), batchembed.read_output(tmp_path / "local"))
    again = batchembed.uses(src, f"s3://{bucket}/uses", pair_distances=True, **models)  # nothing left to embed
    assert again.exit_code == 0 and again.embedding.shards_written == 0
