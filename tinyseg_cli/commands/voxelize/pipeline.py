"""Overlap of the two passes' stages on threads: numpy's sorts and reductions, laspy's decoding
and pyarrow's Parquet writer release the GIL, so reading the next chunk, aggregating the next
tiles and writing the last one run at once on separate cores. Both helpers keep a bounded
number of items in flight (memory stays bounded) and yield results in input order."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
_DONE = object()


def prefetch(items: Iterable[Item], depth: int = 1) -> Iterator[Item]:
    """``items`` produced on a background thread, at most ``depth`` ahead of the consumer.

    An exception of the producer is raised in the consumer; a consumer that stops early
    (error, Ctrl-C) stops the producer at its next item.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(buffer, item, stop):
                    return
            _put(buffer, _DONE, stop)
        except BaseException as error:  # handed to the consumer, raised there
            _put(buffer, error, stop)

    thread = threading.Thread(target=produce, name="tinyseg-prefetch", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _put(buffer: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; whether it was put."""
    while not stop.is_set():
        try:
            buffer.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def ordered_map(
    function: Callable[[Item], Result], items: Iterable[Item], workers: int
) -> Iterator[Result]:
    """``function`` over ``items`` on ``workers`` threads, results in order; ``workers``
    items in flight besides the result the caller holds."""
    if workers <= 1:
        yield from map(function, items)
        return
    pending: deque[Future[Result]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinyseg-tile") as pool:
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) > workers:  # all workers stay busy while the caller works
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
