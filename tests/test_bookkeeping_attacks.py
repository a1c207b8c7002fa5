"""Bookkeeping that is attacked: a damaged or edited output, then a rerun or read_output. Each ends in
the fresh run's rows or one line (OutputError, exit 5); none deletes a file batchembed did not write
or trusts bookkeeping that does not add up (issue 24)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import state_dir
from test_output_rules import cli, one_error_line
from test_resume import output_rows, write_pairs

import batchembed
from batchembed.errors import ExitCode, OutputError

SHARD_ROWS = "5"


def run_cli(glove: Path, out: Path, *inputs: Path, overwrite: bool = False) -> object:
    extra = ["--overwrite"] if overwrite else []
    return cli(glove, *map(str, inputs), "-o", str(out), "--shard-rows", SHARD_ROWS, *extra)


@pytest.fixture
def made(tmp_path: Path, tiny_glove_file: Path) -> tuple[Path, list[Path], list[tuple]]:
    """A finished output of two inputs (12 and 9 pairs: 3 and 2 shards), and its rows."""
    inputs = [write_pairs(tmp_path / "in0.csv", 12, seed=1), write_pairs(tmp_path / "in1.csv", 9, seed=2)]
    out = tmp_path / "out"
    result = run_cli(tiny_glove_file, out, *inputs)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    return out, inputs, output_rows(out)


def shards_of(out: Path, stem: str) -> list[str]:
    """The shard ids of one input's markers, in order."""
    return sorted(p.stem for p in (state_dir(out) / "done").glob(f"{stem}-*.json"))


def listing(out: Path) -> list[str]:
    """Every file of the output and its bookkeeping, with its size: nothing may go missing."""
    found = []
    for root in (out, state_dir(out)):
        found += [f"{p.relative_to(root.parent)}:{p.stat().st_size}" for p in sorted(root.rglob("*")) if p.is_file()]
    return [entry for entry in found if "summary.json" not in entry and "lock" not in entry]


# -- a silently short output --------------------------------------------------------------------


@pytest.mark.parametrize("summary", ["deleted", "kept"])
@pytest.mark.parametrize("gone", ["all-of-one-input", "its-last-shard", "its-first-shard"])
def test_an_input_whose_parts_are_gone_is_refused_by_read_output_then_redone(
    made, tiny_glove_file: Path, summary: str, gone: str
) -> None:
    out, inputs, rows = made
    shards = shards_of(out, "in0")
    chosen = {"all-of-one-input": shards, "its-last-shard": shards[-1:], "its-first-shard": shards[:1]}[gone]
    for shard in chosen:
        (out / f"part-{shard}.parquet").unlink()
        (state_dir(out) / "done" / f"{shard}.json").unlink()
    if summary == "deleted":
        (state_dir(out) / "summary.json").unlink()
    with pytest.raises(OutputError) as refused:
        batchembed.read_output(out)
    assert refused.value.exit_code == ExitCode.OUTPUT_ERROR
    assert "\n" not in str(refused.value)
    if gone == "all-of-one-input":
        assert "in0.csv has 12 pairs, its parts hold 0" in str(refused.value)
    result = run_cli(tiny_glove_file, out, *inputs)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert output_rows(out) == rows
    assert batchembed.read_output(out).num_rows == len(rows)


# -- a user's file is never deleted -------------------------------------------------------------

COPIES = [
    "part-{shard} (1).parquet",  # how file managers name copies
    "part-{shard} (2).parquet",
    "part-{shard}-copy.parquet",
    "part-{shard} copy.parquet",
    "part-{shard}(1).parquet",
    "Copy of part-{shard}.parquet",
    "part-{shard}.parquet.bak",
    "part-{key}-0{index}.parquet",  # an index batchembed does not write (7 digits)
    "part-{upper}-{index}.parquet",  # a hash in capitals
]


@pytest.mark.parametrize("pattern", COPIES)
@pytest.mark.parametrize("overwrite", [False, True], ids=["rerun", "overwrite"])
def test_a_copy_of_a_part_is_refused_and_kept(made, tiny_glove_file: Path, pattern: str, overwrite: bool) -> None:
    out, inputs, rows = made
    shard = shards_of(out, "in0")[0]
    key, index = shard.rsplit("-", 1)
    upper = key[:-8] + key[-8:].upper()
    name = pattern.format(shard=shard, key=key, index=index, upper=upper)
    if upper == key and "{upper}" in pattern:
        pytest.skip("the hash has no letters")
    copy = out / name
    shutil.copyfile(out / f"part-{shard}.parquet", copy)
    before = listing(out)
    result = run_cli(tiny_glove_file, out, *inputs, overwrite=overwrite)
    assert result.exit_code == ExitCode.OUTPUT_ERROR, result.output  # type: ignore[attr-defined]
    assert name in one_error_line(result)
    assert listing(out) == before  # refused before anything was deleted, --overwrite too
    with pytest.raises(OutputError, match="did not write"):
        batchembed.read_output(out)
    copy.unlink()
    assert run_cli(tiny_glove_file, out, *inputs).exit_code == 0  # type: ignore[attr-defined]
    assert output_rows(out) == rows


# -- --overwrite after a kill between a part and its marker, with a damaged manifest -------------

DAMAGE = {
    "truncated": lambda text: text[: len(text) - 40],
    "garbage": lambda text: "\x00\x01 not json at all",
    "empty": lambda text: "",
    "a-list": lambda text: "[1, 2, 3]",
    "other-format": lambda text: text.replace('"format": 1', '"format": 99'),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_overwrite_of_a_damaged_output_starts_it_over(made, tiny_glove_file: Path, damage: str) -> None:
    out, inputs, rows = made
    (state_dir(out) / "done" / f"{shards_of(out, 'in0')[-1]}.json").unlink()  # killed before this marker
    manifest = state_dir(out) / "manifest.json"
    manifest.write_text(DAMAGE[damage](manifest.read_text()))
    plain = run_cli(tiny_glove_file, out, *inputs)
    assert plain.exit_code == ExitCode.OUTPUT_ERROR and "manifest" in one_error_line(plain)  # type: ignore[attr-defined]
    result = run_cli(tiny_glove_file, out, *inputs, overwrite=True)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert output_rows(out) == rows
    assert batchembed.read_output(out).num_rows == len(rows)


@pytest.mark.parametrize("damage", ["garbage", "empty", "a-list"])
def test_overwrite_refuses_parts_it_cannot_tell_its_own_before_deleting_anything(
    made, tiny_glove_file: Path, damage: str
) -> None:
    """With no marker of an input left and a manifest that names nothing, its parts cannot be
    told from a user's: --overwrite refuses, and deletes nothing, not even what is marked."""
    out, inputs, _ = made
    for shard in shards_of(out, "in0"):
        (state_dir(out) / "done" / f"{shard}.json").unlink()
    manifest = state_dir(out) / "manifest.json"
    manifest.write_text(DAMAGE[damage](manifest.read_text()))
    before = listing(out)
    result = run_cli(tiny_glove_file, out, *inputs, overwrite=True)
    assert result.exit_code == ExitCode.OUTPUT_ERROR, result.output  # type: ignore[attr-defined]
    assert "did not write" in one_error_line(result)
    assert listing(out) == before


# -- stray names and damaged directories: one line, never a traceback ----------------------------

STRAYS = [
    "part-.parquet",
    "part-.x.parquet",
    "part-x.parquet",
    "part--deadbeef-000000.parquet",
    "part-a-deadbee-000000.parquet",
    "part-a-deadbeef-1.parquet",
    "part-a-deadbeef-000000.PARQUET",
    "part-a-deadbeef-00000x.parquet",
    ".part-.parquet.tmp-1",
]


@pytest.mark.parametrize("stray", STRAYS)
@pytest.mark.parametrize("where", ["finished-output", "new-output"])
def test_a_stray_name_is_one_line_and_kept(tmp_path: Path, made, tiny_glove_file: Path, stray: str, where: str) -> None:
    out, inputs, _ = made
    if where == "new-output":
        out = tmp_path / "new"
        out.mkdir()
    (out / stray).write_bytes(b"not batchembed's")
    result = run_cli(tiny_glove_file, out, *inputs)
    assert result.exit_code == ExitCode.OUTPUT_ERROR, result.output  # type: ignore[attr-defined]
    assert stray in one_error_line(result)
    assert (out / stray).read_bytes() == b"not batchembed's"
    with pytest.raises(OutputError) as refused:
        batchembed.read_output(out)
    assert refused.value.exit_code == ExitCode.OUTPUT_ERROR


def _file_instead(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.write_text("a file where a directory was")


def _directory_instead(path: Path) -> None:
    path.unlink()
    path.mkdir()


DIRECTORIES = {
    "done-a-file": lambda out: _file_instead(state_dir(out) / "done"),
    "state-a-file": lambda out: _file_instead(state_dir(out)),
    "manifest-a-directory": lambda out: _directory_instead(state_dir(out) / "manifest.json"),
    "a-marker-a-directory": lambda out: _directory_instead(next((state_dir(out) / "done").glob("*.json"))),
    "a-part-a-directory": lambda out: _directory_instead(next(out.glob("part-*.parquet"))),
}


@pytest.mark.parametrize("damage", sorted(DIRECTORIES))
def test_a_damaged_directory_is_one_line(made, tiny_glove_file: Path, damage: str) -> None:
    out, inputs, _ = made
    DIRECTORIES[damage](out)
    with pytest.raises(OutputError) as refused:
        batchembed.read_output(out)
    assert "\n" not in str(refused.value) and refused.value.exit_code == ExitCode.OUTPUT_ERROR
    result = run_cli(tiny_glove_file, out, *inputs)
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    assert result.exit_code in (0, ExitCode.OUTPUT_ERROR), result.output  # type: ignore[attr-defined]
    if result.exit_code:  # type: ignore[attr-defined]
        one_error_line(result)
