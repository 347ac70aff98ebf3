"""``recli.data.stream.ahead``: a worker thread computes items ahead of the consumer."""

from __future__ import annotations

import threading

import pytest

from recli.data.stream import ahead


def test_items_arrive_in_order_from_another_thread():
    threads = []

    def produce():
        for i in range(50):
            threads.append(threading.get_ident())
            yield i

    assert list(ahead(produce, depth=2)) == list(range(50))
    assert set(threads) == {threads[0]} and threads[0] != threading.get_ident()


def test_a_worker_error_is_raised_to_the_consumer():
    def produce():
        yield 1
        raise ValueError("boom")

    got = []
    with pytest.raises(ValueError, match="boom"):
        for item in ahead(produce):
            got.append(item)
    assert got == [1]


def test_the_worker_stops_when_the_consumer_stops():
    made = []

    def produce():
        for i in range(1000):
            made.append(i)
            yield i

    items = ahead(produce, depth=2)
    assert next(items) == 0
    items.close()  # the consumer leaves early: the worker is told to stop and joined
    assert len(made) <= 5
