"""One benchmark run: generate, import, index, embed, then time every engine on the same queries."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click
import numpy as np

from casekb.benchmark import engines, phases
from casekb.benchmark.comparators import BM25_MAX_DOCS, RankBM25, SqliteFts5, tokenised_documents
from casekb.benchmark.corpus import generate_corpus, read_cases
from casekb.benchmark.derived_vectors import build_vectors
from casekb.benchmark.es_server import elasticsearch_url
from casekb.benchmark.latency import measure
from casekb.benchmark.queries import sample_descriptions, sample_queries
from casekb.config import Settings
from indexer.api import encoder_factory, open_backend
from indexer.semantic import SEMANTIC_DEPTH
from indexer.vectors import best_per_case
from indexer.text import parse_query

Echo = Callable[[str], None]
QUERY_SOURCE_CASES = 2000
BUILD_FILE = "bench-build.json"
#: What build_vectors reported, with the stamp of the vectors file it saved (`--reuse` keeps both).
VECTORS_FILE = "bench-vectors.json"
#: Above this many passages recall is measured on the first RECALL_QUERIES queries only: exact search scores
#: every passage, ~1.5 s a query at 1M cases (4.3M passages) on two cores.
RECALL_ALL_QUERIES_UP_TO = 1_000_000
RECALL_QUERIES = 50


@dataclass(frozen=True)
class BenchOptions:
    size: int = 10_000
    queries: int = 500
    concurrency: int = 8
    elasticsearch: bool = True
    embed_sample: int = 16
    #: rank_bm25 and a noida-db Elasticsearch get at most this many of the queries (they are slow)
    slow_queries: int = 100
    seed: int = 7
    #: time the queries on the library an earlier run built (its build figures are reported again)
    reuse: bool = False
    comparators: bool = True
    semantic: bool = True
    #: case descriptions searched in hybrid mode (answered as a case: indexer/case_query.py), one client
    descriptions: int = 40


def bench_settings(settings: Settings, size: int) -> Settings:
    """A library of its own under `<home>/bench/<size>/library` (SQLite), with the installed model."""
    home = settings.home / "bench" / str(size) / "library"
    model = settings.embedding_model_dir if encoder_factory(settings) else None
    return dataclasses.replace(settings, home=home, database_url=f"sqlite:///{home / 'casekb.sqlite3'}",
                               backend="embedded", embedding_model=model)


def _build(settings: Settings, options: BenchOptions, files: list[Path], echo: Echo) -> dict:
    shutil.rmtree(settings.home, ignore_errors=True)
    settings.home.mkdir(parents=True)
    built = {}
    echo(f"importing {options.size} cases (casekb importer, child process)")
    built["import"] = phases.in_child(phases.import_cases, settings, files)
    echo("keyword indexing (Indexer.drain into the embedded backend, child process)")
    built["index"] = phases.in_child(phases.index_cases, settings)
    total = built["import"]["seconds"] + built["index"]["seconds"]
    built["import_and_index"] = {"seconds": total, "cases_per_s": options.size / total}
    echo(f"import {built['import']['cases_per_s']:.0f} cases/s, keyword indexing {built['index']['cases_per_s']:.0f} "
         f"cases/s, both {built['import_and_index']['cases_per_s']:.0f} cases/s ({total:.1f} s)")
    built["sizes_mb"] = {"database": sum(map(phases.disk_mb, settings.home.glob("casekb.sqlite3*"))),  # with WAL
                         "keyword_index": phases.disk_mb(settings.index_dir)}
    (settings.home / BUILD_FILE).write_text(json.dumps(built))
    return built


def _reused(settings: Settings, echo: Echo) -> dict:
    """The build figures of the run that built this library (`--reuse` times queries only)."""
    try:
        built = json.loads((settings.home / BUILD_FILE).read_text())
    except FileNotFoundError:
        raise click.UsageError(f"nothing to reuse: no library built by an earlier run under {settings.home}")
    echo(f"reusing the library under {settings.home} (build figures from the run that built it)")
    return {**built, "reused": True}


def _semantic(settings: Settings, backend, real_cache: Path, options: BenchOptions, files: list[Path],
              echo: Echo) -> dict:
    found = {"vectors": _reused_vectors(settings, backend) if options.reuse else None}
    if found["vectors"]:
        echo("reusing the passage vectors an earlier run derived for this library")
    else:
        echo("passage vectors derived from cached real embeddings of the demo cases (child process)")
        found["vectors"] = phases.in_child(build_vectors, settings, files, real_cache, options.seed)
        stamp = backend.vectors_path().stat().st_mtime_ns
        (settings.home / VECTORS_FILE).write_text(json.dumps({"stamp": stamp, "vectors": found["vectors"]}))
    echo(f"embedding throughput: {options.embed_sample} cases with the real model (child process)")
    found["embedding"] = phases.in_child(phases.embed_sample, settings, list(read_cases(files, options.embed_sample)))
    echo(f"embedding: {found['embedding']['cases_per_s']:.2f} cases/s, {found['embedding']['chars_per_s']:.0f} chars/s")
    return found


def _reused_vectors(settings: Settings, backend) -> dict | None:
    """The figures of the vectors an earlier run derived, if the live vectors file is still the one it saved."""
    try:
        saved = json.loads((settings.home / VECTORS_FILE).read_text())
        stamp = backend.vectors_path().stat().st_mtime_ns
    except (FileNotFoundError, AttributeError):
        return None
    return {**saved["vectors"], "reused": True} if saved["stamp"] == stamp else None


def _time_matrix(all_engines: list[engines.Engine], count: int, clients: int, echo: Echo) -> list[dict]:
    rows = []
    for engine in all_engines:
        numbers = list(range(min(count, engine.max_queries or count)))
        for filtered in (False, True):
            for width in ((1, clients) if engine.concurrent and clients > 1 else (1,)):
                found = measure(lambda n: engine.search(n, filtered), numbers, width)
                rows.append({"engine": engine.name, "mode": engine.mode, "filtered": filtered, "clients": width,
                             **found})
                echo(f"  {engine.name:>16} {engine.mode:<9} {'filtered' if filtered else 'all':<8} x{width}: "
                     f"p50 {found['p50_ms']:.2f} ms, p99 {found['p99_ms']:.2f} ms, {found['qps']:.0f} q/s")
    return rows


def run_benchmark(settings: Settings, options: BenchOptions, echo: Echo = print,
                  checkpoint: Callable[[dict], None] = lambda result: None) -> dict:
    """Everything measured, as one JSON-ready dict (latency rows keep their raw timings for plots).
    Cheap engines are timed first; `checkpoint` gets the result so far after each group of engines,
    so a run stopped midway (1M cases) still leaves its figures."""
    started = time.perf_counter()
    echo = _with_elapsed(echo, started)
    root = settings.home / "bench" / str(options.size)
    echo(f"corpus of {options.size} cases under {root / 'corpus'}")
    files = generate_corpus(settings.demo_cases, options.size, root / "corpus", options.seed)
    library = bench_settings(settings, options.size)
    result = {"size": options.size, "options": dataclasses.asdict(options), "machine": _machine(),
              "build": _reused(library, echo) if options.reuse else _build(library, options, files, echo),
              "latency": []}
    backend = open_backend(library)
    source_texts = [row["text"] for row in read_cases(files, QUERY_SOURCE_CASES)]
    queries = sample_queries(source_texts, options.queries, options.seed)
    parsed = [parse_query(query.text, backend.segmenter) for query in queries]

    def time_engines(group: list[engines.Engine], count: int = len(queries)) -> None:
        echo(f"timing {', '.join(e.name + ' ' + e.mode for e in group)} on {count} queries")
        result["latency"] += _time_matrix(group, count, options.concurrency, echo)
        result["build"]["query_phase_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["seconds"] = time.perf_counter() - started
        result["machine"]["load_average_at_end"] = os.getloadavg()[0]
        checkpoint(result)

    time_engines([engines.casekb_engine(backend, queries, "keyword"),
                  *engines.raw_tantivy_engines(backend, queries, parsed)])
    if options.comparators:
        group = []
        result["comparators"] = _comparators(library, backend, queries, parsed, options, group, echo)
        time_engines(group)
    if options.elasticsearch:
        with ExitStack() as stack:
            group = []
            result["build"]["elasticsearch"] = _elasticsearch(stack, library, root, queries, options, group, echo)
            time_engines(group)
    if library.embedding_model is None or not options.semantic:
        echo("keyword only" + ("" if options.semantic else " (--no-semantic)")
             + ("" if library.embedding_model else ": no embedding model installed (`casekb model install`)"))
        result["finished"] = True
        return result
    result["build"].update(_semantic(library, backend, settings.home / "embeddings.sqlite3", options, files, echo))
    result["build"]["sizes_mb"]["vectors"] = result["build"]["vectors"]["vectors_mb"]
    encoder, vectors = backend.encoder(), {}
    result["query_embedding"] = measure(lambda n: vectors.__setitem__(n, encoder.query(queries[n].text)),
                                        range(len(queries)))
    echo(f"query embedding p50 {result['query_embedding']['p50_ms']:.1f} ms")
    vectors = np.vstack([vectors[n] for n in range(len(queries))])
    result["build"]["vectors"]["recall"] = _vector_recall(backend.vectors(), vectors)
    echo(f"vector search recall against exact search: {result['build']['vectors']['recall']}")
    time_engines([engines.raw_faiss_engine(backend, queries, vectors),
                  *(engines.casekb_engine(backend, queries, mode) for mode in ("semantic", "hybrid"))])
    if options.descriptions:
        descriptions = sample_descriptions(source_texts, options.descriptions, options.seed)
        # Two candidate searches and a case-to-case rerank per query: one client, so p50 is what one mediator waits.
        time_engines([engines.casekb_engine(backend, descriptions, "hybrid", engines.CASE_DESCRIPTION, concurrent=False,
                                            max_queries=len(descriptions))], len(descriptions))
    result["finished"] = True
    return result


def _vector_recall(index, vectors: np.ndarray) -> dict:
    """How much of the exact answer casekb's vector search finds (1.0 for an exact index; HNSW approximates):
    mean share of the exact top passages (as many as semantic search asks for) and of the exact top cases,
    and how close the scores of its top 10 cases come to the exact top 10's (near-copies score alike)."""
    if len(index.keys) > RECALL_ALL_QUERIES_UP_TO:
        vectors = vectors[:RECALL_QUERIES]
    passages, cases, top_scores = [], [], []
    for vector in vectors:
        found, exact = index.search(vector, SEMANTIC_DEPTH * 3), index.exact_search(vector, SEMANTIC_DEPTH * 3)
        passages.append(len({(m.case_id, m.passage) for m in found} & {(m.case_id, m.passage) for m in exact})
                        / max(1, len(exact)))
        found_cases, exact_cases = best_per_case(found), best_per_case(exact)
        shared = {m.case_id for m in exact_cases} & {m.case_id for m in found_cases}
        cases.append(len(shared) / max(1, len(exact_cases)))
        top_scores.append(sum(m.score for m in found_cases[:10]) / max(1e-9, sum(m.score for m in exact_cases[:10])))
    return {"passages_at_depth": float(np.mean(passages)), "cases": float(np.mean(cases)),
            "top10_score_ratio": float(np.mean(top_scores)), "depth": SEMANTIC_DEPTH * 3,
            "queries": len(vectors)}


def _comparators(library, backend, queries, parsed, options, all_engines, echo) -> dict:
    """rank_bm25 (up to BM25_MAX_DOCS cases) and SQLite FTS5 over the same terms; their build times."""
    echo("tokenising the indexed texts for rank_bm25 and SQLite FTS5 (the same jieba terms)")
    documents, built = tokenised_documents(backend._searcher(), backend.segmenter), {}
    if options.size <= BM25_MAX_DOCS:
        started = time.perf_counter()
        documents = list(documents)
        built["tokenise_s"] = time.perf_counter() - started
        started = time.perf_counter()
        all_engines.append(engines.bm25_engine(RankBM25(documents), queries, parsed, options.slow_queries))
        built["rank_bm25_build_s"] = time.perf_counter() - started
    else:
        echo(f"rank_bm25 left out above {BM25_MAX_DOCS} cases: it would hold every term count in Python dicts")
    started = time.perf_counter()
    fts = SqliteFts5(documents, library.home / "fts5.sqlite3")
    built["fts5_build_s"] = time.perf_counter() - started  # with the tokenising, above BM25_MAX_DOCS
    built["fts5_mb"] = phases.disk_mb(fts.path)
    all_engines.append(engines.fts5_engine(fts, queries, parsed))
    return built


def _elasticsearch(stack: ExitStack, library: Settings, root: Path, queries, options, all_engines, echo) -> dict:
    url, what = stack.enter_context(elasticsearch_url(library.es_url, root / "noida"))
    es_settings = dataclasses.replace(library, backend="elasticsearch", es_url=url,
                                      es_index=f"casekb-bench-{root.name}")
    echo(f"indexing into {what} at {url} (Indexer.reindex, child process)")
    built = {"server": what, **phases.in_child(phases.rebuild_cases, es_settings)}
    es_backend = open_backend(es_settings)
    stack.callback(_drop_indices, es_backend)
    engine = engines.casekb_engine(es_backend, queries, "keyword", "elasticsearch")
    # noida-db answers one request at a time and slowly: fewer queries, and no concurrent clients, which only queue.
    all_engines.append(engine if library.es_url else
                       dataclasses.replace(engine, max_queries=options.slow_queries, concurrent=False))
    return built


def _drop_indices(backend) -> None:
    for name in backend.generations():
        backend.client.indices.delete(index=name, ignore_unavailable=True)
    backend.client.options(ignore_status=404).indices.delete_index_template(name=backend.alias)


def _with_elapsed(echo: Echo, started: float) -> Echo:
    return lambda line: echo(f"[{time.perf_counter() - started:5.0f} s] {line}")


def _machine() -> dict:
    """Where and when; the load average says how busy the (shared) machine was at the start."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg()[0]}
