import threading
import time

import pytest

from batchembed.prefetch import ahead


def test_yields_everything_in_order() -> None:
    assert list(ahead(iter(range(100)), depth=3)) == list(range(100))


def test_producer_runs_in_another_thread_and_ahead() -> None:
    produced: list[int] = []

    def items():
        for i in range(3):
            produced.append(threading.get_ident())
            yield i

    it = ahead(items())
    assert next(it) == 0
    time.sleep(0.05)
    assert len(produced) >= 2  # the next item was computed while we held the first
    assert threading.get_ident() not in produced
    assert list(it) == [1, 2]


def test_errors_reach_the_consumer_after_earlier_items() -> None:
    def items():
        yield 1
        raise ValueError("bad row 2")

    it = ahead(items())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad row 2"):
        next(it)


def test_closing_early_stops_the_producer() -> None:
    started = []

    def items():
        for i in range(1000):
            started.append(i)
            yield i

    it = ahead(items())
    next(it)
    it.close()
    count = len(started)
    time.sleep(0.05)
    assert len(started) <= count + 1


def test_at_most_depth_items_wait_beside_the_one_consumed() -> None:
    """A shard is large: the producer starts item k+2 only once the consumer took item k+1."""
    started: list[int] = []

    def items():
        for i in range(10):
            started.append(i)
            yield i

    it = ahead(items(), depth=1)
    assert next(it) == 0
    time.sleep(0.1)
    assert started == [0, 1]  # 0 consumed, 1 computed in advance, 2 not begun
    assert next(it) == 1
    time.sleep(0.1)
    assert started == [0, 1, 2]
    assert list(it) == list(range(2, 10))
