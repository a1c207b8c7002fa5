"""Run an iterator one item ahead in a background thread.

The engine uses it to read and tokenize the next shard while the model works on
the current one: torch releases the GIL inside its kernels, so pure-Python
tokenization overlaps the forward pass.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def ahead(items: Iterator[T], depth: int = 1) -> Generator[T, None, None]:
    """Yield the items of `items`, computing up to `depth` of them in advance.

    Exceptions raised by `items` are re-raised here, in order, in the consumer.
    Closing the generator early stops the producer after its current item.
    """
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            buffer.put(_Raised(exc))
            return
        buffer.put(_DONE)

    thread = threading.Thread(target=produce, name="batchembed-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exception
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full buffer
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


class _Raised:
    def __init__(self, exception: BaseException) -> None:
        self.exception = exception
