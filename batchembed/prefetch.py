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

    An item is started only when a slot is free, and a slot frees when the consumer
    takes an item: so at most `depth` items exist besides the one being consumed
    (a shard is ~100 MB of Python objects; a producer that computed one more and
    then waited to hand it over would hold a third).
    Exceptions raised by `items` are re-raised here, in order, in the consumer.
    Closing the generator early stops the producer after its current item.
    """
    buffer: queue.Queue[object] = queue.Queue()
    slots = threading.Semaphore(depth)
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(items)
        try:
            while True:
                while not slots.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                try:
                    item = next(iterator)
                except StopIteration:
                    buffer.put(_DONE)
                    return
                buffer.put(item)
                del item  # the consumer owns it now
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            buffer.put(_Raised(exc))

    thread = threading.Thread(target=produce, name="batchembed-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            slots.release()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exception
            yield item  # type: ignore[misc]
            del item
    finally:
        stop.set()
        thread.join()


class _Raised:
    def __init__(self, exception: BaseException) -> None:
        self.exception = exception
