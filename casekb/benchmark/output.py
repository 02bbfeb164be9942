"""Write a run out: rich tables on the terminal, results.json (one entry per corpus size, the latest
run of each), report.md and its plots."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from casekb.benchmark.derived_vectors import __doc__ as VECTORS_NOTE  # noqa: E402
from casekb.benchmark.engines import CASE_DESCRIPTION  # noqa: E402

LATENCY_COLUMNS = ("engine", "mode", "filter", "clients", "p50 ms", "p95 ms", "p99 ms", "q/s", "ratio")


def build_rows(result: dict) -> list[tuple[str, ...]]:
    build = result["build"]
    rows = []
    for phase, label in (("import", "import (casekb importer)"), ("index", "keyword indexing (Indexer.drain)"),
                         ("import_and_index", "import + keyword indexing"),
                         ("vectors", "derived passage vectors into VectorIndex"),
                         ("embedding", "embedding, real model (sample)"), ("elasticsearch", "Elasticsearch indexing")):
        if phase in build:
            found = build[phase]
            extra = f", {found['chars_per_s']:.0f} chars/s" if "chars_per_s" in found else ""
            rows.append((label, str(found.get("cases", result["size"])), f"{found['seconds']:.1f}",
                         f"{found.get('cases_per_s', found.get('cases', 0) / found['seconds']):.1f}{extra}",
                         f"{found['peak_rss_mb']:.0f}" if "peak_rss_mb" in found else ""))
    rows.append(("queries (main process, all engines)", "", "", "", f"{build.get('query_phase_peak_rss_mb', 0):.0f}"))
    return rows


def latency_rows(result: dict) -> list[tuple[str, ...]]:
    return [(r["engine"], r["mode"], "filtered" if r["filtered"] else "none", str(r["clients"]), f"{r['p50_ms']:.2f}",
             f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['qps']:.0f}",
             f"{r['ratio']:.2f}x" if "ratio" in r else "") for r in result["latency"]]


def print_tables(result: dict, console: Console) -> None:
    build = Table(title=f"build, {result['size']} cases")
    for column in ("phase", "cases", "seconds", "cases/s", "peak RSS MiB"):
        build.add_column(column)
    for row in build_rows(result):
        build.add_row(*row)
    console.print(build)
    console.print("sizes on disk (MiB): " + ", ".join(f"{k} {v:.1f}" for k, v in result["build"]["sizes_mb"].items()))
    latency = Table(title=f"query latency, {result['size']} cases, {len(result['latency'][0]['timings_ms'])} queries")
    for column in LATENCY_COLUMNS:
        latency.add_column(column, justify="right" if column.endswith(("ms", "q/s", "ratio")) else "left")
    for row in latency_rows(result):
        latency.add_row(*row)
    console.print(latency)
    checks = Table(title="targets (for 100k cases; reported, not asserted)")
    for column in ("target", "value", "met"):
        checks.add_column(column)
    for target in result["targets"]:
        checks.add_row(target["target"], f"{target['value']:.2f}", "yes" if target["met"] else "NO")
    console.print(checks)


def _markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _latency_plot(result: dict, path: Path) -> None:
    rows = [r for r in result["latency"] if not r["filtered"] and r["clients"] == 1]
    figure, axes = plt.subplots(figsize=(8, 4), dpi=90)
    axes.boxplot([r["timings_ms"] for r in rows], whis=(1, 99), showfliers=False)
    axes.set_xticks(range(1, len(rows) + 1), [f"{r['engine']}\n{r['mode']}" for r in rows], fontsize=7)
    axes.set_yscale("log")
    axes.set_ylabel("latency, ms (box: p25-p75, whiskers: p1-p99)")
    axes.set_title(f"query latency per engine, {result['size']} cases, no filter, one client")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _throughput_plot(runs: dict, path: Path) -> None:
    sizes = sorted(runs, key=int)
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=90)
    axes.plot([int(s) for s in sizes], [runs[s]["build"]["import_and_index"]["cases_per_s"] for s in sizes], "o-",
              label="import + keyword indexing, cases/s")
    axes.plot([int(s) for s in sizes], [next(r["qps"] for r in runs[s]["latency"] if r["engine"] == "casekb" and
                                             r["mode"] == "keyword" and not r["filtered"] and r["clients"] > 1)
                                        for s in sizes], "s-", label="keyword queries/s, concurrent clients")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("corpus size, cases")
    axes.legend(fontsize=8)
    axes.set_title("throughput vs corpus size")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _without_timings(result: dict) -> dict:
    return {**result, "latency": [{k: v for k, v in r.items() if k != "timings_ms"} for r in result["latency"]],
            "query_embedding": {k: v for k, v in result.get("query_embedding", {}).items() if k != "timings_ms"}}


def write_outputs(result: dict, out: Path, command: str) -> dict[str, Path]:
    """results.json (merged with earlier sizes), report.md and two PNGs under `out`; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "report": out / "report.md", "latency_plot": out / "latency.png",
             "throughput_plot": out / "throughput.png"}
    runs = json.loads(paths["json"].read_text())["runs"] if paths["json"].exists() else {}
    runs[str(result["size"])] = _without_timings(result)
    paths["json"].write_text(json.dumps({"latest": result["size"], "runs": runs}, ensure_ascii=False, indent=1,
                                        default=str))
    _latency_plot(result, paths["latency_plot"])
    _throughput_plot(runs, paths["throughput_plot"])
    paths["report"].write_text(_markdown(result, command), encoding="utf-8")
    return paths


def _engines_note(result: dict) -> str:
    wanted = result["options"]["queries"]
    capped = sorted({f"{r['engine']} ({r['queries']})" for r in result["latency"]
                     if r["queries"] < wanted and r["engine"] != CASE_DESCRIPTION})
    note = ("Every engine gets the same queries (half cut from case texts, half colloquial) and the same filters "
            "(one category and received since 2021-01-01); rank_bm25 and SQLite FTS5 search casekb's own jieba terms "
            "of the same masked texts. rank_bm25 runs one client only (pure Python under the GIL). ")
    if capped:
        note += (f"Slow engines got only the first queries: {', '.join(capped)}; their ratio uses casekb's p50 "
                 "on those. ")
    described = next((r["queries"] for r in result["latency"] if r["engine"] == CASE_DESCRIPTION), 0)
    if described:
        note += (f"{CASE_DESCRIPTION}: {described} hybrid searches of at least 40 characters, which casekb answers "
                 "as a case (candidates by distinctive terms and by meaning, reranked case to case with the cause "
                 "model), half openings of case texts cut at a sentence end (200-400 characters), half disputes "
                 "told in everyday words; one client. ")
    server = result["build"].get("elasticsearch", {}).get("server", "")
    if server.startswith("noida"):
        note += ("Elasticsearch here is noida-db, an Elasticsearch-API emulator serving one request at a time: its "
                 "figures measure that emulator, not a real Elasticsearch cluster (set CASEKB_ES_URL for one).")
    return note


def _recall_note(vectors: dict, queries: int) -> str:
    recall = vectors.get("recall")
    if not recall:
        return ""
    capped = recall.get("queries", queries) < queries
    which = f"the first {recall['queries']} of these {queries} queries" if capped else "these queries"
    return (f" (recall against exact search on {which}: {recall['passages_at_depth']:.3f} of the top "
            f"{recall['depth']} passages, {recall['cases']:.3f} of the cases they rank; the scores of its top 10 "
            f"cases {recall.get('top10_score_ratio', float('nan')):.4f} of the exact top 10's)")


def _markdown(result: dict, command: str) -> str:
    build, machine = result["build"], result["machine"]
    parts = [
        f"# casekb benchmark: {result['size']} cases", "",
        f"`{command}` on {machine['when']}, Python {machine['python']}, {machine['cpus']} CPUs "
        f"({machine['platform']}); {result['seconds']:.0f} s in all. Load average {machine['load_average']:.1f} "
        f"at the start, {machine['load_average_at_end']:.1f} at the end: the machine is shared, and a load above "
        f"{machine['cpus']} means every figure here is slower than on an idle machine.", "",
        *([] if result.get("finished") else ["**Partial run**: written after the last group of engines that finished; "
                                             "the run stopped before the rest.", ""]),
        "## Build", "", _markdown_table(("phase", "cases", "seconds", "cases/s", "peak RSS MiB"), build_rows(result)),
        "", "Sizes on disk (MiB): " + ", ".join(f"{k} {v:.1f}" for k, v in build["sizes_mb"].items()) + ".", "",
        "## Query latency", "",
        "Ratio: for rank_bm25, SQLite FTS5 and Elasticsearch, their p50 over casekb keyword's at the same filter and "
        "clients (above 1: casekb is faster); for the raw engines, casekb's p50 over theirs (casekb's overhead; "
        "semantic over faiss plus the query embedding).", "",
        _markdown_table(LATENCY_COLUMNS, latency_rows(result)), "", _engines_note(result), "",
        "![latency](latency.png)", "",
        "![throughput](throughput.png)", "",
        "## Targets (meant for 100k cases; reported, not asserted)", "",
        _markdown_table(("target", "value", "met"), [(t["target"], f"{t['value']:.2f}", "yes" if t["met"] else "NO")
                                                      for t in result["targets"]]), "",
    ]
    if "vectors" in build:
        vectors = build["vectors"]
        parts += ["## How the vectors were made", "", " ".join(VECTORS_NOTE.split()), "",
                  f"Here: {vectors['passages']} passages, lent by: {vectors['lent_by']}; "
                  f"{'exact' if vectors['exact'] else 'HNSW'} faiss index"
                  f"{_recall_note(vectors, result['options']['queries'])}. "
                  f"Embedding throughput is measured "
                  f"for real on {build['embedding']['cases']} cases ({build['embedding']['passages']} passages).", ""]
    return "\n".join(parts)
