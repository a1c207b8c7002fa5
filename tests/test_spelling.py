"""One input keeps one name: a run stopped part-way and resumed with the same file spelled another
way (relative, absolute, `./`, a symlink, `file://`) labels every row as an uninterrupted run with
the first spelling would: one `source_file` and one pair-id pattern per input."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import FakeEmbedder
from test_resume import output_rows

from batchembed.config import RunConfig
from batchembed.engines.local import run
from batchembed.results.read import read_output

SPELLINGS = ["relative", "absolute", "dot", "symlink", "file-uri"]


def spelled(how: str, directory: Path) -> str:
    """in.csv in `directory` (the working directory), spelled `how`."""
    return {
        "relative": "in.csv",
        "absolute": str(directory / "in.csv"),
        "dot": "./in.csv",
        "symlink": "link.csv",
        "file-uri": f"file://{directory / 'in.csv'}",
    }[how]


def write_input(directory: Path, pairs: int = 23) -> None:
    """A CSV without an id column, so pair ids carry the file's name; and a symlink to it."""
    lines = ["sentence1,sentence2"] + [f"the light {k} was bright,she read the book {k}" for k in range(pairs)]
    (directory / "in.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "link.csv").symlink_to(directory / "in.csv")


def config(spec: str, out: Path, workers: int = 0) -> RunConfig:
    from batchembed.config import EmbedOptions

    embed = EmbedOptions(tokenize_workers=workers, threads=1)
    return RunConfig(inputs=(spec,), output=out, shard_rows=5, tokenizer="whitespace", embed=embed)


def embedders() -> list[FakeEmbedder]:
    return [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx")]


def stopped_after(shards: int, spec: str, out: Path) -> None:
    seen: list[object] = []

    def stop(result: object) -> None:
        seen.append(result)
        if len(seen) == shards:
            # a name binds once a part is marked: wait for the task thread to mark one, then stop
            deadline = time.monotonic() + 30
            while not any((out.parent / f"{out.name}.batchembed" / "done").glob("*.json")):
                assert time.monotonic() < deadline, "no shard was marked"
                time.sleep(0.01)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config(spec, out), embedders(), on_progress=stop)


@pytest.mark.parametrize("first", SPELLINGS)
@pytest.mark.parametrize("second", SPELLINGS)
def test_a_resume_under_another_spelling_keeps_the_first_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write_input(tmp_path)
    out = tmp_path / "out"
    stopped_after(2, spelled(first, tmp_path), out)
    run(config(spelled(second, tmp_path), out), embedders())
    run(config(spelled(first, tmp_path), tmp_path / "fresh"), embedders())

    table = read_output(out)
    assert set(table.column("source_file").to_pylist()) == {spelled(first, tmp_path)}
    prefixes = {pair_id.rsplit(":", 1)[0] for pair_id in table.column("pair_id").to_pylist()}
    assert prefixes == {"link.csv" if first == "symlink" else "in.csv"}
    assert output_rows(out) == output_rows(tmp_path / "fresh")


def test_a_resume_from_another_working_directory_keeps_the_relative_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorded name is a label, not a path: relative to another directory it still labels,
    and the file is read through the path given now."""
    data = tmp_path / "data"
    data.mkdir()
    write_input(data)
    out = tmp_path / "out"
    monkeypatch.chdir(data)
    stopped_after(1, "in.csv", out)
    monkeypatch.chdir(tmp_path)
    run(config(os.path.join("data", "in.csv"), out), embedders())
    assert set(read_output(out).column("source_file").to_pylist()) == {"in.csv"}


def test_a_new_file_under_an_old_name_is_a_new_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the same file takes the recorded name: another file is another input, with its own."""
    monkeypatch.chdir(tmp_path)
    write_input(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_input(other, pairs=7)
    out = tmp_path / "out"
    run(config("in.csv", out), embedders())
    from batchembed.config import RunConfig as Config

    both = Config(inputs=("in.csv", "other/in.csv"), output=out, shard_rows=5, tokenizer="whitespace", incremental=True)
    run(both, embedders())
    assert set(read_output(out).column("source_file").to_pylist()) == {"in.csv", "other/in.csv"}
