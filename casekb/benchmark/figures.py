"""The run's figures as ratios and target checks, for the terminal table, the JSON file and report.md."""
from __future__ import annotations

import statistics

from casekb.benchmark.engines import RAW_TANTIVY, RAW_TANTIVY_TOP

COMPARATORS = ("rank_bm25", "sqlite fts5", "elasticsearch")
TARGET_SIZE = 100_000


def _row(latency: list[dict], engine: str, mode: str, filtered: bool = False, clients: int = 1) -> dict | None:
    return next((r for r in latency if (r["engine"], r["mode"], r["filtered"], r["clients"]) ==
                 (engine, mode, filtered, clients)), None)


def _p50(row: dict, queries: int) -> float:
    """p50 of a row over its first `queries` queries: engines capped to fewer queries compare like with like."""
    return statistics.median(row["timings_ms"][:queries])


def add_ratios(result: dict) -> None:
    """Each comparator's p50 over casekb keyword's (above 1: casekb is faster), and casekb's p50 over
    its raw engine's (casekb's overhead; for semantic, over faiss plus the query embedding)."""
    latency = result["latency"]
    embed_p50 = result.get("query_embedding", {}).get("p50_ms", 0.0)
    for row in latency:
        key = (row["filtered"], row["clients"])
        base = _row(latency, "casekb", "semantic" if row["engine"] == "faiss (raw)" else "keyword", *key)
        if base is None:
            continue
        if row["engine"] in COMPARATORS:
            row["ratio"] = row["p50_ms"] / _p50(base, row["queries"])
            row["ratio_is"] = "p50 / casekb keyword p50 on the same queries"
        elif row["engine"] in (RAW_TANTIVY, RAW_TANTIVY_TOP):
            row["ratio"], row["ratio_is"] = base["p50_ms"] / row["p50_ms"], "casekb overhead: casekb p50 / raw p50"
        elif row["engine"] == "faiss (raw)":
            row["ratio"] = base["p50_ms"] / (row["p50_ms"] + embed_p50)
            row["ratio_is"] = "casekb overhead: casekb semantic p50 / (raw faiss p50 + query embedding p50)"


def targets(result: dict) -> list[dict]:
    """The issue's targets (meant for 100k cases) against this run's figures, those measured so far;
    reported, never asserted."""
    latency, build = result["latency"], result["build"]
    rows = {name: _row(latency, *name.split("/")) for name in (
        "casekb/keyword", "casekb/hybrid", "tantivy (raw)/keyword", "faiss (raw)/semantic", "rank_bm25/keyword")}
    checks = [("casekb/keyword", "p50_ms", "keyword p50 < 5 ms", lambda v: v < 5),
              ("casekb/keyword", "p99_ms", "keyword p99 < 30 ms", lambda v: v < 30),
              ("casekb/hybrid", "p50_ms", "hybrid p50 < 40 ms incl. query embedding", lambda v: v < 40),
              (f"{RAW_TANTIVY}/keyword", "ratio", "casekb keyword overhead over raw tantivy (same engine work) < 1.5x", lambda v: v < 1.5),
              ("faiss (raw)/semantic", "ratio", "casekb semantic overhead over faiss + embedding < 1.5x",
               lambda v: v < 1.5),
              ("rank_bm25/keyword", "ratio", ">= 50x faster than rank_bm25 (p50 ratio)", lambda v: v >= 50)]
    found = [(name, rows[row][field], test(rows[row][field])) for row, field, name, test in checks
             if rows[row] is not None and field in rows[row]]
    projected = build["import_and_index"]["seconds"] * TARGET_SIZE / result["size"]
    found.append((f"import + keyword indexing of 100k < 120 s (here {result['size']} cases, linear projection)",
                  projected, projected < 120))
    if "embedding" in build:
        embedding = build["embedding"]
        again = embedding["cases_reembedded_after_rebuild"] + embedding["passages_reencoded_after_rebuild"]
        found.append(("unchanged cases not re-embedded after a rebuild (cases + passages)", again, again == 0))
        found.append(("embedded passages found in the embedding cache (misses)", embedding["cache_misses"],
                      embedding["cache_misses"] == 0))
    return [{"target": name, "value": value, "met": met} for name, value, met in found]
