"""The output's rules on a local disk: one lock per directory however it is named, no root, no
foreign files (refused, never deleted), a UTF-8 name, nothing left behind by a refusal; and the
bookkeeping believed only where it agrees with the input (markers, renamed inputs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import state_dir
from test_resume import engine, output_rows, write_pairs
from typer.testing import CliRunner

from batchembed.cli import app
from batchembed.errors import OutputError
from batchembed.io.schema import read_metadata

HOLD = """
import sys
from batchembed.io.layout import OutputLayout
from batchembed.io.lease import hold
from batchembed.io.outputs import check_output, create_output
layout = check_output(sys.argv[1])
create_output(layout)
with hold(layout):
    print("locked", flush=True)
    sys.stdin.read()
"""


def cli(tiny_glove_file: Path, *args: str) -> object:
    options = ["--glove", str(tiny_glove_file), "--no-transformer", "--tokenizer", "whitespace", "-q"]
    return CliRunner().invoke(app, ["run", *args, *options])


def one_error_line(result: object) -> str:
    output = result.output  # type: ignore[attr-defined]
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


# -- one output, however it is named ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name_of",
    [
        lambda root: root / "link",  # a symlink to the directory
        lambda root: root / "linked-parent" / "real",  # a symlink above it
        lambda root: root / "real" / ".." / "real",  # `..`
        lambda root: Path(os.path.relpath(root / "real")),  # relative vs absolute
    ],
    ids=["symlink", "symlinked-parent", "dotdot", "relative"],
)
def test_two_names_of_one_output_share_one_lock(tmp_path: Path, name_of, fake_embedders) -> None:
    root = tmp_path / "runs"
    (root / "real").mkdir(parents=True)
    (root / "link").symlink_to("real")
    (root / "linked-parent").symlink_to(".")
    src = write_pairs(tmp_path / "a.csv", 12)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root / "real")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=f"another batchembed run is writing here \\(pid {holder.pid}"):
            engine([src], name_of(root))
    finally:
        holder.communicate("")
    summary = engine([src], name_of(root))  # once the first run ended: the same output, same bookkeeping
    assert summary.exit_code == 0 and summary.pairs_read == 12
    assert (root / "real.batchembed" / "manifest.json").exists()
    assert not (root / "link.batchembed").exists() and not (root / "linked-parent.batchembed").exists()
    assert engine([src], root / "real").shards_skipped == 3  # the other name resumes it


def test_concurrent_cli_runs_through_a_symlink_cannot_mix_settings(tmp_path: Path, tiny_glove_file: Path) -> None:
    """The reproduction as tried: two real `batchembed run` processes, one through a symlink and
    with other settings; one of them is refused, the output holds one run's parts only."""
    (tmp_path / "runs" / "real").mkdir(parents=True)
    (tmp_path / "runs" / "link").symlink_to("real")
    src = write_pairs(tmp_path / "big.csv", 3000)
    base = [sys.executable, "-m", "batchembed", "run", str(src), "--glove", str(tiny_glove_file), "--no-transformer"]
    base += ["--tokenizer", "whitespace", "--shard-rows", "100", "-q"]
    runs = [
        subprocess.Popen([*base, "-o", str(tmp_path / "runs" / name), *extra], stderr=subprocess.PIPE, text=True)
        for name, extra in (("real", []), ("link", ["--glove-name", "static"]))
    ]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in runs]
    codes = sorted(code for code, _ in results)
    assert all("Traceback" not in err for _, err in results), results
    # either one was refused while the other held the output, or the second found other settings
    assert codes == [0, 5], results
    table = pq.read_table(tmp_path / "runs" / "real")
    assert sorted(set(table.column("source_row").to_pylist())) == list(range(1, 3001))
    models = {json.dumps(read_metadata(pq.read_schema(p))["models"]) for p in (tmp_path / "runs" / "real").iterdir()}
    assert len(models) == 1


# -- roots, foreign files, names ------------------------------------------------------------------


@pytest.mark.parametrize("root", ["/", "/..", "//"])
def test_a_file_system_root_is_refused(tmp_path: Path, root: str, tiny_glove_file: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 3)
    result = cli(tiny_glove_file, str(src), "-o", root)
    assert result.exit_code == 5
    assert "root of the file system" in one_error_line(result) and "/results" in one_error_line(result)


def test_a_relative_name_of_the_root_is_refused(tmp_path: Path, tiny_glove_file: Path, monkeypatch) -> None:
    src = write_pairs(tmp_path / "a.csv", 3)
    monkeypatch.chdir("/tmp")
    result = cli(tiny_glove_file, str(src), "-o", "..")
    assert result.exit_code == 5 and "root of the file system" in one_error_line(result)
    assert not Path("/tmp/.batchembed").exists()


@pytest.mark.parametrize(
    "foreign",
    ["notes.txt", "sub/data.parquet", "part-x.parquet.bak", ".hidden", "a.csv"],
)
def test_foreign_files_in_the_output_are_refused_and_kept(tmp_path: Path, foreign: str, tiny_glove_file: Path) -> None:
    out = tmp_path / "out"
    src = write_pairs(tmp_path / "a.csv", 6)
    (out / foreign).parent.mkdir(parents=True, exist_ok=True)
    (out / foreign).write_text("mine\n")
    result = cli(tiny_glove_file, str(src), "-o", str(out))
    assert result.exit_code == 5
    line = one_error_line(result)
    assert "did not write" in line and foreign in line
    assert (out / foreign).read_text() == "mine\n"  # never deleted
    assert not state_dir(out).exists()  # nothing written
    assert not list(out.glob("part-*.parquet"))


def test_inputs_inside_the_output_are_refused(tmp_path: Path, tiny_glove_file: Path) -> None:
    """`batchembed run lay/a.csv -o lay`: the parts would land among the user's own files."""
    lay = tmp_path / "lay"
    lay.mkdir()
    write_pairs(lay / "a.csv", 4)
    write_pairs(lay / "b.csv", 4)
    for inputs in ([str(lay / "a.csv")], [str(lay)]):
        result = cli(tiny_glove_file, *inputs, "-o", str(lay))
        assert result.exit_code == 5 and "a.csv" in one_error_line(result)
        assert sorted(p.name for p in lay.iterdir()) == ["a.csv", "b.csv"]


def test_a_foreign_file_added_after_a_run_is_refused_on_resume(tmp_path: Path, fake_embedders) -> None:
    out = tmp_path / "out"
    src = write_pairs(tmp_path / "a.csv", 12)
    engine([src], out)
    (out / "README.md").write_text("results of March\n")
    with pytest.raises(OutputError, match="README.md"):
        engine([src], out, overwrite=True)  # not even --overwrite deletes it
    assert (out / "README.md").exists() and len(list(out.glob("part-*"))) == 3


@pytest.mark.parametrize("name", [b"bad\xff", b"caf\xe9/out", b"\xc3(x"])
def test_a_non_utf8_output_name_is_one_line(tmp_path: Path, name: bytes, tiny_glove_file: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 3)
    out = os.fsdecode(os.fsencode(tmp_path) + b"/" + name)
    result = cli(tiny_glove_file, str(src), "-o", out)
    assert result.exit_code == 5
    assert "not valid UTF-8" in one_error_line(result)
    assert sorted(os.listdir(tmp_path)) == ["a.csv"]


def test_a_non_utf8_output_name_from_a_real_process(tmp_path: Path, tiny_glove_file: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 3)
    out = os.fsencode(tmp_path) + b"/runs/bad\xff"
    command = [sys.executable.encode(), b"-m", b"batchembed", b"run", os.fsencode(src), b"-o", out]
    command += [b"--glove", os.fsencode(tiny_glove_file), b"--no-transformer", b"-q"]
    proc = subprocess.run(command, capture_output=True, timeout=120)
    assert proc.returncode == 5, proc.stderr
    assert b"Traceback" not in proc.stderr and b"not valid UTF-8" in proc.stderr
    assert proc.stderr.count(b"\n") == 1


@pytest.mark.parametrize("how", ["state is a file", "state name too long", "output under a file"])
def test_a_refused_output_leaves_no_directory_behind(tmp_path: Path, how: str, tiny_glove_file: Path) -> None:
    src = write_pairs(tmp_path / "a.csv", 3)
    out = tmp_path / "new" / "out"
    if how == "state is a file":
        out.parent.mkdir()
        state_dir(out).write_text("someone's file\n")
    elif how == "state name too long":
        out = tmp_path / "new" / ("o" * 250)  # the output's name fits, `<name>.batchembed` does not
    else:
        (tmp_path / "new").write_text("a file where a directory should be\n")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = cli(tiny_glove_file, str(src), "-o", str(out))
    assert result.exit_code == 5, result.output
    one_error_line(result)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


# -- markers are input too ------------------------------------------------------------------------


def _marker(out: Path, index: int) -> Path:
    return sorted((state_dir(out) / "done").glob("*.json"))[index]


@pytest.mark.parametrize(
    "field, value",
    [
        ("status_counts", ["ok", 3]),
        ("status_counts", {"ok": "3"}),
        ("pairs", "5"),
        ("index", -1),
        ("last", "yes"),
        ("extent", 1.5),
        ("rows", None),
        ("run", True),
        ("part_sha256", 7),
    ],
)
def test_a_damaged_marker_field_costs_its_shard_not_the_run(tmp_path: Path, field: str, value) -> None:
    out = tmp_path / "out"
    src = write_pairs(tmp_path / "a.csv", 13)
    engine([src], out)
    expected = output_rows(out)
    marker = _marker(out, 1)
    data = json.loads(marker.read_text())
    data[field] = value
    marker.write_text(json.dumps(data))
    for _ in range(2):  # redone once, then believed again
        summary = engine([src], out)
        assert summary.exit_code == 0 and summary.pairs_read == 13
        assert output_rows(out) == expected
    assert summary.shards_written == 0


@pytest.mark.parametrize("content", ["", "[]", "{", "null", '{"shard_id": 3}', "\xff\xfe"])
def test_unparsable_markers_cost_their_shard(tmp_path: Path, content: str) -> None:
    out = tmp_path / "out"
    src = write_pairs(tmp_path / "a.csv", 13)
    engine([src], out)
    expected = output_rows(out)
    _marker(out, 0).write_text(content, encoding="latin-1")
    summary = engine([src], out)
    assert (summary.exit_code, summary.pairs_read, summary.shards_written) == (0, 13, 1)
    assert output_rows(out) == expected


def test_an_extra_marker_and_part_past_the_file_are_not_counted(tmp_path: Path) -> None:
    """A copied marker and part claiming shard 7 of a 3-shard file: not believed, its part goes."""
    out = tmp_path / "out"
    src = write_pairs(tmp_path / "a.csv", 13)
    engine([src], out)
    expected = output_rows(out)
    for k, (fake_index, last) in enumerate([(7, False), (5, True)]):
        marker = _marker(out, 1)
        data = json.loads(marker.read_text())
        key = data["file_key"]
        data.update(index=fake_index, first_row=fake_index * 5 + 1, shard_id=f"{key}-{fake_index:06d}", last=last)
        (marker.parent / f"{data['shard_id']}.json").write_text(json.dumps(data))
        part = out / f"part-{key}-{1:06d}.parquet"
        (out / f"part-{data['shard_id']}.parquet").write_bytes(part.read_bytes())
        summary = engine([src], out)
        assert summary.exit_code == 0 and summary.pairs_read == 13, k
        assert output_rows(out) == expected
        assert len(list(out.glob("part-*"))) == 3


def test_an_extra_marker_during_a_first_incomplete_run_is_not_counted(tmp_path: Path) -> None:
    """Before any run read the whole file (its pair count unknown): markers past the true last
    shard are dropped once the file has been read to its end."""
    out = tmp_path / "out"
    src = write_pairs(tmp_path / "a.csv", 13)
    engine([src], out)
    expected = output_rows(out)
    manifest = state_dir(out) / "manifest.json"
    data = json.loads(manifest.read_text())
    for record in data["inputs"].values():
        record["pairs"] = None  # as after a killed first run
    manifest.write_text(json.dumps(data))
    last = _marker(out, 2)
    marker = json.loads(last.read_text())
    last.unlink()  # the true last shard is not done yet
    key = marker["file_key"]
    marker.update(index=7, first_row=36, shard_id=f"{key}-000007", last=False, pairs=5)
    (last.parent / f"{key}-000007.json").write_text(json.dumps(marker))
    (out / f"part-{key}-000007.parquet").write_bytes((out / f"part-{key}-000002.parquet").read_bytes())
    summary = engine([src], out)
    assert summary.exit_code == 0 and summary.pairs_read == 13
    assert output_rows(out) == expected


@pytest.mark.parametrize("known_count", [True, False], ids=["count-recorded", "first-run-killed"])
def test_a_forged_last_marker_hides_no_rows(tmp_path: Path, known_count: bool) -> None:
    """`last: true` on marker 0 and shards 1-2 removed: the rows of 1-2 are redone, not lost."""
    out = tmp_path / "out"
    src = write_pairs(tmp_path / "a.csv", 13)
    engine([src], out)
    expected = output_rows(out)
    if not known_count:
        manifest = state_dir(out) / "manifest.json"
        data = json.loads(manifest.read_text())
        for record in data["inputs"].values():
            record["pairs"] = None
        manifest.write_text(json.dumps(data))
    first = _marker(out, 0)
    data = json.loads(first.read_text())
    data["last"] = True
    data["extent"] = src.stat().st_size
    first.write_text(json.dumps(data))
    for marker in sorted((state_dir(out) / "done").glob("*.json"))[1:]:
        marker.unlink()
    summary = engine([src], out)
    assert summary.exit_code == 0 and summary.pairs_read == 13
    assert output_rows(out) == expected


# -- renamed inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("new_name", ["b_renamed.csv", "sub/b.csv"])
def test_incremental_after_a_rename_keeps_the_rows_once(tmp_path: Path, new_name: str) -> None:
    out = tmp_path / "out"
    (tmp_path / "in").mkdir()
    write_pairs(tmp_path / "in" / "a.csv", 12)
    b = write_pairs(tmp_path / "in" / "b.csv", 9, seed=1)
    engine([tmp_path / "in"], out)
    renamed = tmp_path / "in" / new_name
    renamed.parent.mkdir(exist_ok=True)
    b.rename(renamed)
    summary = engine([tmp_path / "in"], out, incremental=True)
    assert summary.exit_code == 0 and summary.pairs_read == 21
    fresh = tmp_path / "fresh"
    engine([tmp_path / "in"], fresh)
    assert output_rows(out) == output_rows(fresh)


def test_a_copy_is_not_a_rename(tmp_path: Path) -> None:
    """The same content under a second name, the first still there: two inputs, both kept."""
    out = tmp_path / "out"
    (tmp_path / "in").mkdir()
    b = write_pairs(tmp_path / "in" / "b.csv", 9)
    engine([tmp_path / "in"], out)
    (tmp_path / "in" / "c.csv").write_bytes(b.read_bytes())
    summary = engine([tmp_path / "in"], out, incremental=True)
    assert summary.pairs_read == 18


def test_without_incremental_a_rename_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "in").mkdir()
    b = write_pairs(tmp_path / "in" / "b.csv", 9)
    engine([tmp_path / "in"], out)
    b.rename(tmp_path / "in" / "c.csv")
    with pytest.raises(OutputError, match="incremental"):
        engine([tmp_path / "in"], out)
