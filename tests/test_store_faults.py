"""Object storage that fails: a store that goes away mid-run (briefly, or for good), an endpoint
that is not there, credentials the store refuses, a bucket root, foreign objects under the output
prefix, a same-second rewrite of an input, and a lease whose renewal meets a network error.

The store is the suite's real moto_server; its faults are real network faults: a TCP relay in
front of it that the test cuts (every connection reset) and restores, or a second moto_server
that checks credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from conftest import start_moto_server
from test_object_storage import engine, rows, s3, upload, write_pairs

from batchembed.config import EmbedOptions
from batchembed.errors import OutputError
from batchembed.io.lease import ObjectLease
from batchembed.io.storage import locate

pytest.importorskip("moto")


class Relay:
    """A TCP relay to the store that can be cut: while cut, every connection (old and new) is reset."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.cut = threading.Event()
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.cut.is_set():
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                self._reset(client)
                continue
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()

    def down(self) -> None:
        self.cut.set()
        with self.lock:
            for s in self.open:
                self._reset(s)
            self.open.clear()

    def up(self) -> None:
        self.cut.clear()

    def close(self) -> None:
        self.down()
        self.server.close()


@pytest.fixture
def relay(s3_endpoint: str) -> Iterator[Relay]:
    r = Relay(s3_endpoint)
    yield r
    r.close()


def _markers(bucket: str) -> int:
    selector = pafs.FileSelector(f"{bucket}/out.batchembed/done", allow_not_found=True)
    return sum(1 for i in s3().get_file_info(selector) if i.path.endswith(".json"))


def _cli(
    bucket: str, endpoint: str, glove: Path, *extra: str, env: dict[str, str] | None = None, out: str = "out"
) -> subprocess.Popen:
    command = [sys.executable, "-m", "batchembed", "run", f"s3://{bucket}/in", "-o", f"s3://{bucket}/{out}"]
    command += ["--glove", str(glove), "--no-transformer", "--tokenizer", "whitespace", "--shard-rows", "3", *extra]
    environment = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "BATCHEMBED_LEASE_SECONDS": "30", **(env or {})}
    return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _fresh_rows(bucket: str, glove: Path) -> list[tuple]:
    """An uninterrupted run's rows: the same command, straight to the store."""
    proc = _cli(bucket, os.environ["AWS_ENDPOINT_URL"], glove, "-q", out="fresh")
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    return rows(f"s3://{bucket}/fresh")


def _wait_for_markers(bucket: str, proc: subprocess.Popen, at_least: int) -> None:
    deadline = time.monotonic() + 120
    while _markers(bucket) < at_least:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("outage", [2.0, 8.0])
def test_a_short_outage_mid_run_is_ridden_out(
    tmp_path: Path, bucket: str, relay: Relay, tiny_glove_file: Path, outage: float
) -> None:
    write_pairs(tmp_path / "data", "a.csv", 300)
    upload(tmp_path / "data", f"{bucket}/in")
    proc = _cli(bucket, relay.endpoint, tiny_glove_file)
    _wait_for_markers(bucket, proc, 4)
    relay.down()
    time.sleep(outage)
    relay.up()
    code = proc.wait(timeout=300)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 0 and "Traceback" not in stderr, stderr
    summary = json.loads(locate(f"s3://{bucket}/out.batchembed/summary.json").read_text())
    assert summary["outcome"] == "finished" and summary["pairs_read"] == 300
    assert rows(f"s3://{bucket}/out") == _fresh_rows(bucket, tiny_glove_file)


@pytest.mark.slow
@pytest.mark.parametrize("call", ["read", "write", "list"])
def test_batchembed_retries_past_the_store_clients_own_retries(
    bucket: str, relay: Relay, caplog: pytest.LogCaptureFixture, call: str
) -> None:
    """An outage longer than the store client's own retries: batchembed's attempts ride it out."""
    with s3().open_output_stream(f"{bucket}/x/object") as stream:
        stream.write(b"data")
    os.environ["AWS_ENDPOINT_URL"] = relay.endpoint
    try:
        where, directory = locate(f"s3://{bucket}/x/object"), locate(f"s3://{bucket}/x")
    finally:
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{relay.target[1]}"
    relay.down()
    threading.Timer(12, relay.up).start()
    started = time.monotonic()
    with caplog.at_level("WARNING"):
        if call == "read":
            assert where.read_bytes() == b"data"
        elif call == "write":
            where.write_atomic(b"new")
            assert locate(f"s3://{bucket}/x/object").read_bytes() == b"new"
        else:
            assert [e.path for e in directory.files(strict=True)] == [f"{bucket}/x/object"]
    assert time.monotonic() - started >= 11
    assert "trying again" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("attempts", ["1", "2"])
def test_a_store_gone_for_good_mid_run_is_one_line_exit_5_then_a_resume(
    tmp_path: Path, bucket: str, relay: Relay, tiny_glove_file: Path, attempts: str
) -> None:
    write_pairs(tmp_path / "data", "a.csv", 300)
    write_pairs(tmp_path / "data", "b.csv", 30)
    upload(tmp_path / "data", f"{bucket}/in")
    proc = _cli(bucket, relay.endpoint, tiny_glove_file, "-q", env={"BATCHEMBED_STORE_ATTEMPTS": attempts})
    _wait_for_markers(bucket, proc, 4)
    relay.down()
    started = time.monotonic()
    code = proc.wait(timeout=300)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert code == 5, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "unreachable" in errors[0] and "run the same command again" in errors[0], stderr
    assert time.monotonic() - started < 150  # bounded: retries, then a fast stop
    relay.up()
    # the store is back: the same command resumes once the stopped run's lease is released or expired
    lease = locate(f"s3://{bucket}/out.batchembed/lease.json")
    if lease.exists():  # the stopped run could not delete it: it expires by itself
        time.sleep(max(0.0, json.loads(lease.read_text())["expires"] - time.time() + 1))
    again = _cli(bucket, relay.endpoint, tiny_glove_file, "-q", env={"BATCHEMBED_LEASE_SECONDS": "2"})
    code = again.wait(timeout=300)
    assert code == 0, again.stderr.read() if again.stderr else ""
    assert rows(f"s3://{bucket}/out") == _fresh_rows(bucket, tiny_glove_file)


def test_the_summary_says_what_happened_when_it_can_be_written(tmp_path: Path, bucket: str) -> None:
    """Parts go to a store that stops answering, the bookkeeping stays reachable: the summary
    records the stop and the error line (here the same store, through two endpoints)."""
    write_pairs(tmp_path / "data", "a.csv", 12)
    upload(tmp_path / "data", f"{bucket}/in")
    from batchembed.io import layout as layout_module

    real_part = layout_module.OutputLayout.part

    def part_then_fail(self, shard_id: str):  # type: ignore[no-untyped-def]
        location = real_part(self, shard_id)
        if shard_id.endswith("000002"):  # the third part's key: a bucket that does not exist
            return locate(f"s3://no-such-bucket-{os.getpid()}/part.parquet")
        return location

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layout_module.OutputLayout, "part", part_then_fail)
        with pytest.raises(OutputError) as caught:
            engine([f"s3://{bucket}/in"], f"s3://{bucket}/out", shard_rows=3, embed=EmbedOptions(tokenize_workers=0))
    assert "\n" not in str(caught.value)
    summary = json.loads(locate(f"s3://{bucket}/out.batchembed/summary.json").read_text())
    assert summary["outcome"].startswith("stopped:") and summary["exit_code"] == 5
    assert summary["pairs_read"] == 6
    assert not locate(f"s3://{bucket}/out.batchembed/lease.json").exists()


# -- endpoints and credentials that never worked ---------------------------------------------------


@pytest.fixture(scope="module")
def checking_store() -> Iterator[str]:
    """A second moto_server that checks credentials (every key is unknown to it)."""
    proc, endpoint = start_moto_server({**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    yield endpoint
    proc.terminate()
    proc.wait(10)


def _run_cli(endpoint: str, inputs: str, output: str, glove: Path, attempts: str = "2") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "batchembed", "run", inputs, "-o", output, "--glove", str(glove)]
    command += ["--no-transformer", "--tokenizer", "whitespace", "-q"]
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "BATCHEMBED_STORE_ATTEMPTS": attempts}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("which", ["unreachable", "refused credentials", "no such bucket"])
def test_an_s3_output_that_cannot_be_used_is_one_line_exit_5(
    tmp_path: Path, bucket: str, checking_store: str, tiny_glove_file: Path, which: str
) -> None:
    src = write_pairs(tmp_path, "a.csv", 4)
    endpoint = {"unreachable": "http://127.0.0.1:1", "refused credentials": checking_store}.get(
        which, os.environ["AWS_ENDPOINT_URL"]
    )
    out = f"s3://no-such-bucket-{os.getpid()}/out" if which == "no such bucket" else "s3://out1/dead"
    proc = _run_cli(endpoint, str(src), out, tiny_glove_file)
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("Error: s3://"), proc.stderr


def test_an_s3_input_on_an_unreachable_endpoint_stays_an_input_error(tmp_path: Path, tiny_glove_file: Path) -> None:
    proc = _run_cli("http://127.0.0.1:1", "s3://in1/a.csv", str(tmp_path / "out"), tiny_glove_file, attempts="1")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


# -- bucket roots and foreign objects ------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/"])
def test_a_bucket_root_is_refused(tmp_path: Path, bucket: str, suffix: str) -> None:
    src = write_pairs(tmp_path, "a.csv", 4)
    with pytest.raises(OutputError, match=f"root of bucket '{bucket}'.*s3://{bucket}/results"):
        engine([str(src)], f"s3://{bucket}{suffix}")
    assert not s3().get_file_info(pafs.FileSelector(bucket, recursive=True))


@pytest.mark.parametrize("key", ["notes.txt", "deeper/data.parquet", "part-0.csv"])
def test_a_foreign_object_under_the_output_prefix_is_refused_and_kept(tmp_path: Path, bucket: str, key: str) -> None:
    src = write_pairs(tmp_path, "a.csv", 4)
    with s3().open_output_stream(f"{bucket}/out/{key}") as stream:
        stream.write(b"mine")
    with pytest.raises(OutputError, match="did not write"):
        engine([str(src)], f"s3://{bucket}/out")
    assert [i.path for i in s3().get_file_info(pafs.FileSelector(bucket, recursive=True)) if i.size] == [
        f"{bucket}/out/{key}"
    ]


# -- a same-size rewrite within the same second --------------------------------------------------


@pytest.mark.parametrize("versioned", [False, True])
def test_a_same_second_same_size_rewrite_of_an_s3_input_is_seen(
    tmp_path: Path, bucket: str, versioned: bool, s3_endpoint: str
) -> None:
    if versioned:
        import boto3

        client = boto3.client("s3", endpoint_url=s3_endpoint)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = write_pairs(tmp_path / "one", "a.csv", 9)
    second = tmp_path / "two" / "a.csv"
    second.parent.mkdir()
    second.write_text(first.read_text().replace("light", "LIGHT"))  # same size, other content
    assert first.stat().st_size == second.stat().st_size
    uri = f"s3://{bucket}/in/a.csv"
    upload(first, f"{bucket}/in/a.csv")
    engine([uri], f"s3://{bucket}/out", shard_rows=3)
    before = s3().get_file_info(f"{bucket}/in/a.csv")
    upload(second, f"{bucket}/in/a.csv")
    after = s3().get_file_info(f"{bucket}/in/a.csv")
    if before.mtime_ns != after.mtime_ns:  # the run took over a second: record the rewrite's second, as if
        manifest = locate(f"s3://{bucket}/out.batchembed/manifest.json")  # it had come within the same one
        data = json.loads(manifest.read_text())
        for record in data["inputs"].values():
            record["mtime_ns"] = after.mtime_ns
        manifest.write_text(json.dumps(data))
    assert before.size == after.size
    with pytest.raises(OutputError, match="a.csv changed"):
        engine([uri], f"s3://{bucket}/out", shard_rows=3)
    summary = engine([uri], f"s3://{bucket}/out", shard_rows=3, incremental=True)
    assert summary.exit_code == 0 and summary.pairs_read == 9
    engine([uri], f"s3://{bucket}/fresh", shard_rows=3)
    assert rows(f"s3://{bucket}/out") == rows(f"s3://{bucket}/fresh")


def test_the_driver_reads_no_input_byte_on_object_storage(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Comparing inputs with the manifest is metadata only: any read of an input's bytes while
    the driver reconciles fails the test."""
    write_pairs(tmp_path / "data", "a.csv", 9)
    upload(tmp_path / "data", f"{bucket}/in")
    engine([f"s3://{bucket}/in"], f"s3://{bucket}/out", shard_rows=3)
    from batchembed.io import manifest
    from batchembed.io.storage import Location

    real_inspect = manifest.inspect

    def no_bytes(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the driver read input bytes while comparing inputs")

    def inspect_without_reading(*args, **kwargs):  # type: ignore[no-untyped-def]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Location, "open_stream", no_bytes)
            patch.setattr(Location, "read_bytes", no_bytes)
            return real_inspect(*args, **kwargs)

    monkeypatch.setattr("batchembed.engines.reconcile.inspect", inspect_without_reading)
    for _ in range(2):  # the first run records identities, the second compares them
        summary = engine([f"s3://{bucket}/in"], f"s3://{bucket}/out", shard_rows=3)
        assert summary.exit_code == 0 and summary.shards_written == 0


# -- the lease on a flaky network ---------------------------------------------------------------


def _lease_via(relay: Relay, bucket: str, ttl: float) -> ObjectLease:
    os.environ["AWS_ENDPOINT_URL"] = relay.endpoint
    try:
        record, output = locate(f"s3://{bucket}/lease.json"), locate(f"s3://{bucket}/out")
    finally:
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{relay.target[1]}"
    return ObjectLease(record, output, ttl=ttl, settle=0.05)


@pytest.mark.slow
def test_a_network_error_while_renewing_is_not_a_takeover(bucket: str, relay: Relay, monkeypatch) -> None:
    monkeypatch.setenv("BATCHEMBED_STORE_ATTEMPTS", "1")
    lease = _lease_via(relay, bucket, ttl=30)
    lease.acquire()
    try:
        relay.down()
        time.sleep(12)  # more than one heartbeat (ttl / 3) fails, the lease has not expired
        relay.up()
        lease.check()  # still ours: nobody took it
        time.sleep(11)  # the next heartbeat renews it
        lease.check()
        assert json.loads(locate(f"s3://{bucket}/lease.json").read_text())["owner"] == lease.me.owner
    finally:
        lease.release()


@pytest.mark.slow
def test_a_lease_that_could_not_be_renewed_says_so(bucket: str, relay: Relay, monkeypatch) -> None:
    monkeypatch.setenv("BATCHEMBED_STORE_ATTEMPTS", "1")
    lease = _lease_via(relay, bucket, ttl=3)
    lease.acquire()
    try:
        relay.down()
        time.sleep(15)
        with pytest.raises(OutputError) as caught:
            lease.check()
        message = str(caught.value)
        assert "lost its lease" in message and "took it over" not in message
        assert "renewed" in message and "\n" not in message
    finally:
        relay.up()
        lease.release()


def test_lost_lease_messages_read_as_sentences(bucket: str) -> None:
    record, output = locate(f"s3://{bucket}/lease.json"), locate(f"s3://{bucket}/out")
    for how, expected in (
        ("removed", "this run lost its lease (its lease record was removed)"),
        ("taken", "took it over)"),
    ):
        mine = ObjectLease(record, output, ttl=0.6, settle=0.05)
        mine.acquire()
        try:
            if how == "removed":
                record.delete()
            else:
                ObjectLease(record, output, ttl=60, settle=0.05)._write()
            time.sleep(0.5)
            with pytest.raises(OutputError) as caught:
                mine.check()
            assert expected in str(caught.value), str(caught.value)
        finally:
            mine.release()
            record.delete()


# -- a renamed object under --incremental --------------------------------------------------------


@pytest.mark.parametrize("new_key", ["in/a_renamed.csv", "in/sub/a.csv"])
def test_incremental_after_renaming_an_s3_input_keeps_its_rows_once(tmp_path: Path, bucket: str, new_key: str) -> None:
    write_pairs(tmp_path / "data", "a.csv", 9)
    write_pairs(tmp_path / "data", "b.csv", 6)
    upload(tmp_path / "data", f"{bucket}/in")
    engine([f"s3://{bucket}/in"], f"s3://{bucket}/out", shard_rows=3)
    s3().copy_file(f"{bucket}/in/a.csv", f"{bucket}/{new_key}")  # S3 has no rename: copy, then delete
    s3().delete_file(f"{bucket}/in/a.csv")
    summary = engine([f"s3://{bucket}/in"], f"s3://{bucket}/out", shard_rows=3, incremental=True)
    assert summary.exit_code == 0 and summary.pairs_read == 15
    engine([f"s3://{bucket}/in"], f"s3://{bucket}/fresh", shard_rows=3)
    assert rows(f"s3://{bucket}/out") == rows(f"s3://{bucket}/fresh")
