"""Scale-out helpers shared by the commands that process many independent items (SPEC §2):
a map over worker processes and ``--shard K/N`` selection."""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.context
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class HasSampleId(Protocol):
    @property
    def sample_id(self) -> str: ...


Sample = TypeVar("Sample", bound=HasSampleId)


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def shard(items: Sequence[Sample], index: int, count: int) -> list[Sample]:
    """Every ``count``-th item starting at ``index``, in sample-id order."""
    return sorted(items, key=lambda item: item.sample_id)[index::count]


def parallel_map(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    jobs: int = 1,
    on_done: Callable[[Result], None] | None = None,
) -> list[Result]:
    """``function`` over ``items``, in item order, over ``jobs`` worker processes.

    ``function`` must be picklable (a module-level function or a ``functools.partial`` of
    one). ``on_done`` is called in the parent with each result as it arrives (progress bars).
    The first exception raised by a worker propagates; work not yet started is cancelled.
    """
    results: list[Result] = []
    for result in _iterate(function, items, jobs):
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


def _start_method() -> multiprocessing.context.BaseContext | None:
    """fork on Linux, where workers then start with the parent's imports. Python 3.14 made
    forkserver the default there, which re-imports tinyseg and numpy in every worker (about
    0.2 s each: on a folder of small masks, 2 workers were then no faster than 1)."""
    return multiprocessing.get_context("fork") if sys.platform == "linux" else None


def _iterate(
    function: Callable[[Item], Result], items: Sequence[Item], jobs: int
) -> Iterator[Result]:
    if jobs <= 1 or len(items) <= 1:
        yield from map(function, items)
        return
    chunksize = max(1, min(16, len(items) // (jobs * 4)))
    # Forked workers share the parent's objects copy-on-write; a collection in a worker that
    # walks them copies their pages. Frozen, collections skip them (Python's gc.freeze advice
    # for fork): about a tenth off the parallel part of scoring small masks on 2 cores.
    gc.freeze()
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=_start_method())
    try:
        yield from pool.map(function, items, chunksize=chunksize)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        gc.unfreeze()
    pool.shutdown(wait=True)
