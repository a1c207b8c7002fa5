"""Inputs and outputs on object storage, against a real S3-compatible server.

The session starts `moto_server` (PyPI `moto[server]`) on 127.0.0.1 and points
pyarrow's S3 filesystem at it through `AWS_ENDPOINT_URL`, as a user would point
batchembed at MinIO or any S3-compatible store. Nothing is mocked in-process:
every read and write crosses HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from conftest import FakeEmbedder

from batchembed.config import RunConfig
from batchembed.engines.local import run
from batchembed.errors import OutputError
from batchembed.io.lease import ObjectLease
from batchembed.io.storage import locate

pytest.importorskip("moto")


def s3() -> pafs.FileSystem:
    return pafs.FileSystem.from_uri("s3://x")[0]


def write_pairs(directory: Path, name: str, n: int) -> Path:
    words = ["the light", "a bright room", "she read", "river bank", "money in the bank", "joy"]
    lines = ["id,sentence1,sentence2"] + [
        f"{name}-{i},{words[i % 6]} {i},{words[(i * 5 + 1) % 6]} and {words[i % 6]}" for i in range(n)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def upload(local: Path, uri_path: str) -> None:
    pafs.copy_files(str(local), uri_path, destination_filesystem=s3())


def rows(output: str) -> list[tuple]:
    location = locate(output)
    table = pq.read_table(location.path, filesystem=location.fs).drop_columns(["source_file"])
    return sorted(tuple(str(v) for v in r.values()) for r in table.to_pylist())


def fakes() -> list[FakeEmbedder]:
    return [FakeEmbedder("static", contextual=False), FakeEmbedder("ctx")]


def engine(inputs: list[str], output: str, **options) -> object:
    options.setdefault("shard_rows", 4)
    options.setdefault("tokenizer", "whitespace")
    return run(RunConfig(inputs=tuple(inputs), output=output, **options), fakes())


def test_s3_in_and_s3_out_equal_a_local_run(tmp_path: Path, bucket: str) -> None:
    data = tmp_path / "data"
    write_pairs(data, "a.csv", 11)
    write_pairs(data / "sub", "b.csv", 6)
    pq.write_table(
        pa.table({"sentence1": ["the light", "joy"], "sentence2": ["a light", "joy and light"]}), data / "c.parquet"
    )
    upload(data, f"{bucket}/in")
    engine([str(data)], str(tmp_path / "local"))
    summary = engine([f"s3://{bucket}/in"], f"s3://{bucket}/out")
    assert summary.exit_code == 0 and summary.pairs_read == 19
    assert rows(f"s3://{bucket}/out") == rows(str(tmp_path / "local"))
    # the output directory holds the parts and nothing else; the bookkeeping is beside it
    listed = [i.path for i in s3().get_file_info(pafs.FileSelector(f"{bucket}/out", recursive=True))]
    assert listed and all(p.rsplit("/", 1)[1].startswith("part-") and p.endswith(".parquet") for p in listed)
    state = json.loads(locate(f"s3://{bucket}/out.batchembed/summary.json").read_text())
    assert state["pairs_read"] == 19 and state["exit_code"] == 0
    # a re-run reads no part and no input row: everything is done
    again = engine([f"s3://{bucket}/in"], f"s3://{bucket}/out")
    assert again.nothing_to_do and again.pairs_read == 19


def test_globs_and_single_objects_on_s3(tmp_path: Path, bucket: str) -> None:
    data = tmp_path / "data"
    write_pairs(data, "a.csv", 5)
    write_pairs(data / "sub", "b.csv", 3)
    write_pairs(data, "c.csv", 2)
    upload(data, f"{bucket}/in")
    summary = engine([f"s3://{bucket}/in/*.csv", f"s3://{bucket}/in/sub/b.csv"], f"s3://{bucket}/out")
    assert summary.pairs_read == 10
    deep = engine([f"s3://{bucket}/in/**/b.csv"], f"s3://{bucket}/out2")
    assert deep.pairs_read == 3


ODD_KEYS = ["p%41.csv", "pA.csv", "a+b.csv", "with space.csv", "café ünï.csv"]


def odd_keys(tmp_path: Path, bucket: str) -> None:
    """Objects whose keys a URI parser would decode ('%41' is 'A'), reject (' ') or mangle ('+')."""
    for n, key in enumerate(ODD_KEYS):
        local = write_pairs(tmp_path / "odd", f"f{n}.csv", 3 + n)
        with s3().open_output_stream(f"{bucket}/in/{key}") as stream:
            stream.write(local.read_bytes())


@pytest.mark.parametrize(
    "spec, pairs",
    [
        ("in", 3 + 4 + 5 + 6 + 7),  # the listing: each key opened exactly as listed
        ("in/p%41.csv", 3),  # a key named literally
        ("in/with space.csv", 6),
        ("in/café ünï.csv", 7),
        ("in/p?41.csv", 3),  # '?' and '[...]' are glob patterns, never a URI's query
        ("in/[ap]*.csv", 3 + 4 + 5),
        ("in/*+*.csv", 5),
    ],
)
def test_object_keys_are_opened_exactly_as_listed(tmp_path: Path, bucket: str, spec: str, pairs: int) -> None:
    odd_keys(tmp_path, bucket)
    summary = engine([f"s3://{bucket}/{spec}"], f"s3://{bucket}/out")
    assert summary.exit_code == 0 and not summary.errors
    assert summary.pairs_read == pairs
    table = pq.read_table(f"{bucket}/out", filesystem=s3())
    ids = sorted(set(table.column("pair_id").to_pylist()))
    assert len(ids) == pairs  # every pair of every matched object, none twice


def test_missing_objects_and_buckets_are_one_line_input_errors(bucket: str) -> None:
    from batchembed.errors import InputError

    with pytest.raises(InputError, match="no such file or directory") as caught:
        engine([f"s3://{bucket}/nothing.csv"], f"s3://{bucket}/out")
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="the pattern matches no .csv"):
        engine([f"s3://{bucket}/in/*.csv"], f"s3://{bucket}/out")


def test_readers_read_the_output_directory_on_s3(tmp_path: Path, bucket: str, s3_endpoint: str) -> None:
    import pandas as pd
    import polars as pl

    write_pairs(tmp_path, "a.csv", 9)
    upload(tmp_path / "a.csv", f"{bucket}/in/a.csv")
    engine([f"s3://{bucket}/in/a.csv"], f"s3://{bucket}/out")
    expected = pq.read_table(f"{bucket}/out", filesystem=s3()).num_rows
    assert expected >= 9
    assert len(pd.read_parquet(f"{bucket}/out", filesystem=s3())) == expected
    options = {"aws_endpoint_url": s3_endpoint, "aws_allow_http": "true", "aws_region": "us-east-1"}
    assert pl.read_parquet(f"s3://{bucket}/out/", storage_options=options).height == expected
    assert pl.scan_parquet(f"s3://{bucket}/out/", storage_options=options).collect().height == expected


def test_report_reads_results_from_s3(tmp_path: Path, bucket: str) -> None:
    from batchembed.results.report import write_report

    write_pairs(tmp_path, "a.csv", 9)
    upload(tmp_path / "a.csv", f"{bucket}/in/a.csv")
    engine([f"s3://{bucket}/in/a.csv"], f"s3://{bucket}/out")
    page = write_report(f"s3://{bucket}/out", tmp_path / "report")
    html = page.read_text(encoding="utf-8")
    assert f"<code>s3://{bucket}/out</code>: 9 sentence pairs" in html  # the summary read from the bucket
    assert html.count("data:image/png;base64,") == 4 and len(list(page.parent.glob("*.png"))) == 4


def test_a_damaged_part_on_s3_is_redone(tmp_path: Path, bucket: str) -> None:
    write_pairs(tmp_path, "a.csv", 13)
    upload(tmp_path / "a.csv", f"{bucket}/in/a.csv")
    engine([f"s3://{bucket}/in/a.csv"], f"s3://{bucket}/out")
    expected = rows(f"s3://{bucket}/out")
    part = sorted(i.path for i in s3().get_file_info(pafs.FileSelector(f"{bucket}/out")))[1]
    with s3().open_input_stream(part) as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with s3().open_output_stream(part) as f:
        f.write(bytes(data))
    summary = engine([f"s3://{bucket}/in/a.csv"], f"s3://{bucket}/out")
    assert summary.shards_written == 1
    assert rows(f"s3://{bucket}/out") == expected


# -- the lease ------------------------------------------------------------------------------------

HOLD = """
import sys, time
from batchembed.io.lease import ObjectLease
from batchembed.io.storage import locate
lease = ObjectLease(locate(sys.argv[1]), locate(sys.argv[2]), ttl=float(sys.argv[3]), settle=0.2)
lease.acquire()
print("held", flush=True)
time.sleep(300)
"""


def hold_in_another_process(bucket: str, ttl: float) -> subprocess.Popen:
    record, output = f"s3://{bucket}/out.batchembed/lease.json", f"s3://{bucket}/out"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, record, output, str(ttl)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_is_refused_while_the_lease_is_held_and_takes_over_once_it_expired(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHEMBED_LEASE_SECONDS", "3")
    write_pairs(tmp_path, "a.csv", 7)
    upload(tmp_path / "a.csv", f"{bucket}/in/a.csv")
    holder = hold_in_another_process(bucket, ttl=3)
    try:
        for _ in range(2):  # a live holder renews: still refused after more than one ttl
            with pytest.raises(OutputError, match=f"another batchembed run holds the lease \\(pid {holder.pid}"):
                engine([f"s3://{bucket}/in/a.csv"], f"s3://{bucket}/out")
            time.sleep(2)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the dead holder renews no more: refused until its lease expires, then taken over
    time.sleep(3.5)
    summary = engine([f"s3://{bucket}/in/a.csv"], f"s3://{bucket}/out")
    assert summary.exit_code == 0 and summary.pairs_read == 7
    assert not locate(f"s3://{bucket}/out.batchembed/lease.json").exists()  # released at the end


def test_a_run_that_lost_its_lease_stops_before_the_next_part(bucket: str) -> None:
    record, output = locate(f"s3://{bucket}/lease.json"), locate(f"s3://{bucket}/out")
    mine = ObjectLease(record, output, ttl=0.6, settle=0.05)
    mine.acquire()
    try:
        mine.check()
        thief = ObjectLease(record, output, ttl=60, settle=0.05)
        thief._write()  # another run's claim, as after an expiry
        time.sleep(0.5)
        with pytest.raises(OutputError, match="lost its lease"):
            mine.check()
    finally:
        mine.release()
    assert json.loads(record.read_text())["owner"] == thief.me.owner  # not deleted: it is not ours


def test_two_contenders_at_once_get_at_most_one_lease(bucket: str) -> None:
    record, output = locate(f"s3://{bucket}/lease.json"), locate(f"s3://{bucket}/out")
    import threading

    won: list[ObjectLease] = []
    lost: list[str] = []

    def contend() -> None:
        lease = ObjectLease(record, output, ttl=30, settle=0.5)
        try:
            lease.acquire()
            won.append(lease)
        except OutputError as error:
            lost.append(str(error))

    threads = [threading.Thread(target=contend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(won) == 1 and len(lost) == 3
    finally:
        for lease in won:
            lease.release()


# -- kill -9 of the driver, then resume --------------------------------------------------------------


def _done_markers(bucket: str) -> int:
    selector = pafs.FileSelector(f"{bucket}/out.batchembed/done", allow_not_found=True)
    return sum(1 for i in s3().get_file_info(selector) if i.path.endswith(".json"))


@pytest.mark.slow
def test_kill_9_of_the_driver_on_s3_then_resume_gives_an_uninterrupted_runs_rows(
    tmp_path: Path, bucket: str, tiny_glove_file: Path
) -> None:
    data = tmp_path / "data"
    write_pairs(data, "a.csv", 150)
    write_pairs(data, "b.csv", 90)
    upload(data, f"{bucket}/in")
    options = ["--glove", str(tiny_glove_file), "--no-transformer", "--tokenizer", "whitespace", "--shard-rows", "3"]
    env = {**os.environ, "BATCHEMBED_LEASE_SECONDS": "2"}
    command = [sys.executable, "-m", "batchembed", "run", f"s3://{bucket}/in", "-o", f"s3://{bucket}/out", *options]
    for _ in range(2):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = _done_markers(bucket)
        deadline = time.monotonic() + 120
        while _done_markers(bucket) < start + 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(2.5)  # the dead driver's lease expires
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    fresh = subprocess.run(
        [sys.executable, "-m", "batchembed", "run", str(data), "-o", str(tmp_path / "fresh"), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert rows(f"s3://{bucket}/out") == rows(str(tmp_path / "fresh"))


def test_a_local_output_directory_reads_as_one_table_in_every_reader(tmp_path: Path) -> None:
    import duckdb
    import pandas as pd
    import polars as pl

    write_pairs(tmp_path / "in", "a.csv", 14)
    out = tmp_path / "out"
    engine([str(tmp_path / "in")], str(out))
    engine([str(tmp_path / "in")], str(out))  # a re-run leaves nothing else behind either
    expected = pq.read_table(out).num_rows
    assert expected >= 14 and len(list(out.iterdir())) == 4
    assert len(pd.read_parquet(out)) == expected
    assert pl.read_parquet(out).height == expected
    assert pl.scan_parquet(out).collect().height == expected
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/**')").fetchall() == [(expected,)]
    assert duckdb.sql(f"SELECT count(*) FROM '{out}/*.parquet'").fetchall() == [(expected,)]
