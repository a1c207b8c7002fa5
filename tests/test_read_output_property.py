"""As a property: read_output of an output whose bookkeeping or parts were damaged at random returns
exactly the fresh run's rows, or raises OutputError (with its exit code, in one line). Never fewer
rows, never another exception (issue 24)."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import examples, state_dir
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_cli_properties import damage_output, json_values
from test_resume import engine, write_pairs

import batchembed
from batchembed.errors import ExitCode, OutputError

DAMAGES = [
    # the CLI property test's (test_cli_properties.py)
    "truncate manifest",
    "garble manifest",
    "manifest list",
    "manifest field",
    "drop markers",
    "marker field",
    "garble marker",
    "forge last",
    "copy marker",
    "lock record",
    "stray temporaries",
    # and more, on the parts and directories themselves
    "drop an input",
    "drop parts",
    "drop summary",
    "copy a part",
    "truncate a part",
    "flip a byte",
    "forget an input",
    "done a file",
    "stray file",
    "stray name",
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple]]:
    """A finished output of three inputs (several shards each), and its rows as read_output gives them."""
    directory = tmp_path_factory.mktemp("pristine")
    inputs = [write_pairs(directory / f"in{k}.csv", n, seed=k) for k, n in enumerate((13, 7, 11))]
    out = directory / "out"
    engine(inputs, out, shard_rows=4)
    return out, rows_of(batchembed.read_output(out))


def rows_of(table: Any) -> list[tuple]:
    return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())


def damage(out: Path, how: str, seed: int, value: Any) -> None:
    state = state_dir(out)
    parts = sorted(out.glob("part-*.parquet"))
    part = parts[seed % len(parts)]
    if how in ("drop an input", "forget an input"):
        key = part.stem.removeprefix("part-").rsplit("-", 1)[0]
        if how == "forget an input":
            manifest = json.loads((state / "manifest.json").read_text())
            del manifest["inputs"][key]
            (state / "manifest.json").write_text(json.dumps(manifest))
        for found in out.glob(f"part-{key}-*.parquet"):
            found.unlink()
            (state / "done" / f"{found.stem.removeprefix('part-')}.json").unlink()
        # the summary goes too, but not with the manifest's record: the manifest is the authority,
        # and an output whose manifest, summary, parts and markers all agree on one input less is
        # indistinguishable from one made without it
        if seed & 1 and how == "drop an input":
            (state / "summary.json").unlink()
    elif how == "drop parts":
        for k, found in enumerate(parts):
            if (seed >> k) & 1:
                found.unlink()
    elif how == "drop summary":
        (state / "summary.json").unlink()
    elif how == "copy a part":
        copies = [" (1)", "-copy", " copy", "(2)", ".parquet.bak", ""]
        suffix = copies[seed % len(copies)]
        name = f"Copy of {part.name}" if not suffix else part.name.replace(".parquet", f"{suffix}.parquet")
        shutil.copyfile(part, out / name)
    elif how == "truncate a part":
        part.write_bytes(part.read_bytes()[: seed % part.stat().st_size])
    elif how == "flip a byte":
        data = bytearray(part.read_bytes())
        data[seed % len(data)] ^= 1 + (seed >> 8) % 255
        part.write_bytes(bytes(data))
    elif how == "done a file":
        shutil.rmtree(state / "done")
        (state / "done").write_text("")
    elif how in ("stray file", "stray name"):
        names = ["part-.parquet", "part-.x.parquet", "notes.txt", "part-a-deadbeef-1.parquet", "_SUCCESS"]
        name = names[seed % len(names)] if how == "stray name" else f"part-{seed}.parquet"
        (out / name).write_bytes(part.read_bytes())
    else:
        damage_output(out, how, seed, value)


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(how=st.sampled_from(DAMAGES), seed=st.integers(0, 2**16), value=json_values, twice=st.booleans())
def test_read_output_of_damaged_bookkeeping_is_the_fresh_rows_or_one_output_error(
    pristine: tuple[Path, list[tuple]], how: str, seed: int, value: Any, twice: bool
) -> None:
    source, fresh = pristine
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        shutil.copytree(source, out)
        shutil.copytree(state_dir(source), state_dir(out))
        damage(out, how, seed, value)
        if twice:  # two damages at once; the second may find nothing left to damage
            second = sorted(DAMAGES)[(seed >> 4) % len(DAMAGES)]
            # an input forgotten by the manifest with its parts and markers, and the summary gone too:
            # no witness is left, and the output is one made without that input (see "forget an input")
            assume({how, second} != {"drop summary", "forget an input"})
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, IndexError, ZeroDivisionError):
                damage(out, second, seed >> 2, value)
        try:
            table = batchembed.read_output(out)
        except OutputError as refused:
            assert refused.exit_code == ExitCode.OUTPUT_ERROR
            assert "\n" not in str(refused) and "Traceback" not in str(refused)
            return
        assert rows_of(table) == fresh, how
