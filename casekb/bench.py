"""Search latency over a fixed, deterministic query set drawn from the indexed corpus."""
from __future__ import annotations

import random
import re
import statistics
import time
from dataclasses import dataclass

from sqlalchemy import select

from indexer.query import Filters, SearchQuery
from kb.db import Database
from kb.models import DisputeCase

COLLOQUIAL = ("邻居 楼上 漏水", "借钱不还", "离婚 孩子 抚养费", "老板 拖欠工资", "工伤 赔偿", "彩礼 退还",
              "宅基地 围墙", "物业费 不交", "交通事故 误工费", "装修 噪音", "医院 手术 赔偿", "土地 承包 纠纷",
              "欠条 利息", "房屋 租赁 押金", "父母 赡养", "拆迁 补偿款")


@dataclass(frozen=True)
class LatencyReport:
    queries: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    def __str__(self) -> str:
        return (f"{self.queries} queries: p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms, "
                f"p99 {self.p99_ms:.2f} ms, mean {self.mean_ms:.2f} ms")


def sample_queries(db: Database, count: int, seed: int = 7) -> list[str]:
    """Half colloquial queries, half short phrases cut from case texts (fixed seed)."""
    rng = random.Random(seed)
    with db.sessions() as session:
        texts = list(session.scalars(select(DisputeCase.facts).order_by(DisputeCase.id)))
    queries = []
    while len(queries) < count:
        if len(queries) % 2 or not texts:
            queries.append(rng.choice(COLLOQUIAL))
            continue
        sentences = [s for s in re.split(r"[，。；,;]", rng.choice(texts)) if len(s) >= 6]
        if sentences:
            sentence = rng.choice(sentences)
            start = rng.randrange(0, max(1, len(sentence) - 12))
            queries.append(sentence[start:start + rng.randint(4, 12)])
    return queries


def measure(backend, queries: list[str], filters: Filters = Filters()) -> LatencyReport:
    """Run each query once (after one warm-up pass) and report latency percentiles."""
    for text in queries[:20]:
        backend.search(SearchQuery(text=text, filters=filters))
    timings = []
    for text in queries:
        started = time.perf_counter()
        backend.search(SearchQuery(text=text, filters=filters))
        timings.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    return LatencyReport(len(timings), cuts[49], cuts[94], cuts[98], statistics.fmean(timings))
