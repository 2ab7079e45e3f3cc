"""Shared helpers for the benchmarks: timing, result records, targets and rich output."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
if not console.is_terminal:  # piped or captured: wide enough that the tables do not wrap
    console = Console(highlight=False, width=160)


def cores() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Fraction of all cores busy over ``seconds`` while this process sleeps (Linux only).

    Benchmarks on a shared machine are only as good as its idle time; a high value means
    other work competed with the measurements.
    """

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total > 0 else None


def warn_if_busy(where: str) -> float | None:
    """Sample :func:`cpu_busy` and print a warning when other work is running."""
    busy = cpu_busy()
    if busy is not None and busy > 0.1:
        console.print(
            f"[bold yellow]warning[/]: {busy:.0%} of the CPU was busy with other work "
            f"just before {where}; timings (parallel ones most) may be pessimistic"
        )
    return busy


def best_of(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls of ``fn`` (after ``warmup`` untimed calls)."""
    times, results = interleaved({"fn": fn}, repeats, warmup)
    return times["fn"], results["fn"]


def interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1
) -> tuple[dict[str, float], dict[str, Any]]:
    """Best time of each function, timed round-robin so drifts (clock, cache, other load) hit
    all alike. The garbage collector is paused while timing, as ``timeit`` does."""
    results: dict[str, Any] = {}
    for _ in range(warmup):
        for name, fn in fns.items():
            results[name] = fn()
    best = dict.fromkeys(fns, float("inf"))
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in fns.items():
                results[name] = None  # free the previous result before the next call
                start = time.perf_counter()
                results[name] = fn()
                best[name] = min(best[name], time.perf_counter() - start)
    finally:
        if enabled:
            gc.enable()
    return best, results


@dataclass
class Measure:
    """One timed candidate: seconds for ``pixels`` pixels (or ``items`` items)."""

    name: str
    seconds: float
    pixels: int = 0
    note: str = ""

    @property
    def gpix_s(self) -> float:
        """Throughput in 10^9 pixels per second."""
        return self.pixels / self.seconds / 1e9 if self.pixels and self.seconds > 0 else 0.0


@dataclass
class Target:
    """A SPEC §8 target: ``value`` compared with ``bound`` (``>=`` or ``<=``)."""

    name: str
    value: float
    bound: float
    op: str  # ">=" or "<="
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.value >= self.bound if self.op == ">=" else self.value <= self.bound


@dataclass
class Section:
    """What one benchmark module reports: rows for the summary, targets and raw data."""

    title: str
    ratios: list[tuple[str, float, str]] = field(default_factory=list)  # name, value, note
    targets: list[Target] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary of everything measured."""
        return {
            "title": self.title,
            "ratios": [{"name": n, "value": v, "note": note} for n, v, note in self.ratios],
            "targets": [{**asdict(t), "passed": t.passed} for t in self.targets],
            "raw": self.raw,
        }


def verdict(passed: bool) -> str:
    """A coloured PASS/FAIL label."""
    return "[bold green]PASS[/]" if passed else "[bold red]FAIL[/]"


def targets_table(title: str, targets: list[Target]) -> Table:
    """A table of targets with their measured values and PASS/FAIL."""
    table = Table(title=title, title_justify="left")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("required", justify="right")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for t in targets:
        table.add_row(t.name, f"{t.value:.3f}", f"{t.op} {t.bound:g}", verdict(t.passed), t.detail)
    return table


def fmt_seconds(seconds: float) -> str:
    """Seconds with a sensible unit."""
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
