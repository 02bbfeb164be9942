"""Latency percentiles and throughput of a search function, from one client or several threads."""
from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

Item = TypeVar("Item")
#: Searches before timing starts: a tenth of the items, at most this many.
WARM_UP = 10


def _timed(search: Callable[[Item], object], item: Item) -> float:
    started = time.perf_counter()
    search(item)
    return (time.perf_counter() - started) * 1000


def summary(timings_ms: Sequence[float], wall_s: float) -> dict:
    cuts = statistics.quantiles(timings_ms, n=100, method="inclusive") if len(timings_ms) > 1 else [timings_ms[0]] * 99
    return {"queries": len(timings_ms), "p50_ms": cuts[49], "p95_ms": cuts[94], "p99_ms": cuts[98],
            "mean_ms": statistics.fmean(timings_ms), "qps": len(timings_ms) / wall_s, "timings_ms": list(timings_ms)}


def measure(search: Callable[[Item], object], items: Sequence[Item], clients: int = 1) -> dict:
    """Each item searched once after a short warm-up (the first items again); with `clients` > 1, by that
    many threads at once."""
    for item in items[:min(WARM_UP, len(items) // 10)]:
        search(item)
    started = time.perf_counter()
    if clients == 1:
        timings = [_timed(search, item) for item in items]
    else:
        with ThreadPoolExecutor(clients) as pool:
            timings = list(pool.map(lambda item: _timed(search, item), items))
    return summary(timings, time.perf_counter() - started)
