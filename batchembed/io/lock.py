"""One run per output directory on a local disk: an exclusive flock on `<output>.batchembed/lock`.

flock is released by the kernel when its holder dies, kill -9 included, so a
lock left by a killed run is never stale: the next run simply gets it. The
file itself stays (deleting a lock file races with a run that has just opened
it); it holds the pid, host and start time of the last holder, for the
message a refused run prints. flock works on local file systems; on NFS use a
local output directory or one run at a time.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from types import TracebackType

from batchembed.errors import OutputError

log = logging.getLogger(__name__)


def _holder(fd: int) -> dict[str, object]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class OutputLock:
    """Context manager holding the output's lock; raises OutputError if another run has it."""

    def __init__(self, path: str, output: str) -> None:
        self.path, self.output = path, output
        self.fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create the lock file: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"{self.output}: another batchembed run is writing here (pid {holder.get('pid', '?')} "
                    f"on {holder.get('host', '?')}, started {holder.get('started', '?')}); "
                    "wait for it to finish or stop it"
                ) from None
            raise OutputError(
                f"{self.path}: cannot lock ({exc.strerror}); put the output on a local file system"
            ) from exc
        previous = _holder(fd)
        if previous.get("pid") not in (None, os.getpid()):
            here = previous.get("host") == socket.gethostname()
            state = "no longer running" if here and not _alive(previous.get("pid")) else "its lock was released"
            log.info("taking over %s from pid %s (%s)", self.path, previous.get("pid"), state)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise OutputError(f"{self.path}: cannot write the lock file: {exc.strerror}") from exc
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = None

    def check(self) -> None:
        """The flock cannot be lost while the process lives: nothing to check."""

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
