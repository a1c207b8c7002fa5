"""One run at a time per output, on any storage.

On a local disk: an flock (io/lock.py), released by the kernel when its holder
dies, so it is never stale.

On object storage there is no flock, and pyarrow's filesystems offer no
conditional write, so the lease is an owner record, `<output>.batchembed/lease.json`,
taken by write-settle-verify:

- A run reads the record. If another owner's lease has not expired, it refuses.
- Otherwise it writes its own record (owner id, host, pid, expiry), waits
  `settle` seconds and reads the record back: only the run that finds its own
  id there holds the lease (of several writers, the store keeps the last).
- While it holds the lease, a heartbeat thread renews the expiry every
  `ttl / 3` seconds, first checking that the record is still its own. The run
  checks the lease before it writes each part, and stops (exit 5) once it has
  been taken over.
- A lease whose holder died expires `ttl` seconds after its last heartbeat and
  is then taken over by the next run. A run that ends deletes its record.

What this guarantees, and on what: with a store that has read-after-write
consistency (Amazon S3, GCS, Azure Blob, MinIO), two runs never both hold the
lease provided each writes within `settle` seconds of reading, and host clocks
agree to well within `ttl`. It is a lease, not a lock: a holder frozen for longer
than `ttl` (suspended VM) can lose it while frozen, and writes at most the part
in flight before it notices; parts are deterministic, so that part is the same
the new holder writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Protocol

import pyarrow as pa

from batchembed.errors import OutputError
from batchembed.io.layout import OutputLayout
from batchembed.io.lock import OutputLock
from batchembed.io.storage import RUN_AGAIN, Location
from batchembed.io.storage import _one_line as reason

log = logging.getLogger(__name__)

DEFAULT_TTL = 60.0  # seconds a lease outlives its last heartbeat
DEFAULT_SETTLE = 2.0  # seconds between writing a claim and reading it back


def _seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class Held(Protocol):
    def check(self) -> None: ...


@dataclass
class LeaseRecord:
    owner: str
    host: str
    pid: int
    started: str
    expires: float  # seconds since the epoch

    def valid(self) -> bool:
        strings = all(isinstance(v, str) for v in (self.owner, self.host, self.started))
        return strings and isinstance(self.pid, int) and isinstance(self.expires, (int, float))

    def until(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.expires))


class ObjectLease:
    """A lease with heartbeat and expiry on storage without locks (see the module's note)."""

    def __init__(self, record: Location, output: Location, ttl: float | None = None, settle: float | None = None):
        self.record, self.output = record, output
        self.ttl = ttl if ttl is not None else _seconds("BATCHEMBED_LEASE_SECONDS", DEFAULT_TTL)
        self.settle = settle if settle is not None else min(self.ttl / 4, DEFAULT_SETTLE)
        self.me = LeaseRecord(
            uuid.uuid4().hex, socket.gethostname(), os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%S%z"), 0
        )
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> LeaseRecord | None:
        """The record, or None when there is none (or a torn or foreign one, which protects nothing).
        Raises OutputError when the store cannot be asked: that says nothing about who holds it."""
        try:
            text = self.record.read_text()
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"{self.record}: cannot read the lease record: {reason(exc)}; {RUN_AGAIN}") from exc
        except UnicodeDecodeError:
            text = ""
        try:
            data = json.loads(text)
            record = LeaseRecord(**data) if isinstance(data, dict) else None
            if record is not None and not record.valid():
                raise TypeError("fields of the wrong type")
            return record
        except (ValueError, TypeError) as exc:
            log.warning("%s: unreadable lease record (%s); treating it as expired", self.record, exc)
            return None

    def _write(self) -> None:
        expires = time.time() + self.ttl
        self.record.write_text(json.dumps(asdict(replace(self.me, expires=expires))) + "\n")
        self.me.expires = expires

    def acquire(self) -> None:
        current = self._read()
        if current is not None and current.owner != self.me.owner and current.expires > time.time():
            raise OutputError(
                f"{self.output}: another batchembed run holds the lease (pid {current.pid} on {current.host}, "
                f"started {current.started}; it expires {current.until()} unless renewed); "
                "wait for it to finish or stop it"
            )
        if current is not None:
            log.info("taking over the expired lease of pid %s on %s", current.pid, current.host)
        self._write()
        time.sleep(self.settle)
        winner = self._read()
        if winner is None or winner.owner != self.me.owner:
            who = f"pid {winner.pid} on {winner.host}" if winner else "another run"
            raise OutputError(f"{self.output}: {who} took the lease at the same moment; wait for it to finish")
        self._thread = threading.Thread(target=self._heartbeat, name="batchembed-lease", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                current = self._read()
                if current is None or current.owner != self.me.owner:
                    self.lost = (
                        f"pid {current.pid} on {current.host} took it over"
                        if current
                        else "its lease record was removed"
                    )
                    return
                self._write()
            except OutputError as error:  # the store failed: retried at the next beat while the lease lasts
                if time.time() >= self.me.expires:
                    self.lost = f"it could not be renewed before it expired ({error})"
                    return
                log.warning("%s: cannot renew the lease (%s); trying again", self.record, error)

    def check(self) -> None:
        if self.lost is None and self.me.expires and time.time() >= self.me.expires:
            self.lost = "it expired before it could be renewed"  # the heartbeat is stuck on the store
        if self.lost is not None:
            raise OutputError(
                f"{self.output}: this run lost its lease ({self.lost}); stopping, finished parts are kept"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            current = self._read()
            if current is not None and current.owner == self.me.owner:
                self.record.delete()
        except (OutputError, OSError, pa.ArrowException) as error:
            log.warning("%s: cannot release the lease (%s); it expires by itself", self.record, error)


@contextlib.contextmanager
def hold(layout: OutputLayout) -> Iterator[Held]:
    """Hold the output for this run: flock on a local disk, a lease on object storage."""
    holder: OutputLock | ObjectLease
    if layout.state.is_local:
        holder = OutputLock(layout.state.join("lock").path, str(layout.data))
    else:
        holder = ObjectLease(layout.state.join("lease.json"), layout.data)
    holder.acquire()
    try:
        yield holder
    finally:
        holder.release()
