"""Build phases, each run in a fresh child process so that its peak RSS is its own."""
from __future__ import annotations

import dataclasses
import json
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from casekb.config import Settings
from corpus.importer import import_file
from indexer.api import Indexer, open_backend
from indexer.semantic import passage_inputs
from kb.db import Database, migrate


def in_child(phase: Callable[..., dict], *args) -> dict:
    """Run `phase(*args)` in a fresh child process; its result plus that process's peak RSS in MiB.

    Children fork from a server process that has only imported casekb (the baseline of any casekb
    process), not from this one, whose memory would count as theirs."""
    context = get_context("forkserver")
    context.set_forkserver_preload([__name__, "casekb.benchmark.derived_vectors", "indexer.embeddings"])
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_measured, phase, *args).result()


def _measured(phase: Callable[..., dict], *args) -> dict:
    result = phase(*args)
    return {**result, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # the largest of the phase's own worker processes (keyword indexing analyses in workers), if any
            "peak_worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def _database(settings: Settings) -> Database:
    db = Database(settings.database_url)
    migrate(db.engine)
    return db


def import_cases(settings: Settings, files: list[Path]) -> dict:
    """casekb's importer, one shard file (one transaction) at a time; changes go to the outbox."""
    db = _database(settings)
    started, created = time.perf_counter(), 0
    for path in files:
        created += import_file(db, settings, path).created
    seconds = time.perf_counter() - started
    return {"cases": created, "seconds": seconds, "cases_per_s": created / seconds}


def index_cases(settings: Settings) -> dict:
    """casekb's Indexer draining the outbox into the configured backend."""
    indexer = Indexer(_database(settings), open_backend(settings), settings.index_batch_size)
    started = time.perf_counter()
    drained = indexer.drain()  # counts a case once per batch it was queued in
    seconds = time.perf_counter() - started
    cases = indexer.backend.document_count()
    return {"cases": cases, "drained": drained, "seconds": seconds, "cases_per_s": cases / seconds}


def rebuild_cases(settings: Settings) -> dict:
    """casekb's Indexer rebuilding the configured backend's index from the database."""
    indexer = Indexer(_database(settings), open_backend(settings), settings.index_batch_size)
    started = time.perf_counter()
    done = indexer.reindex()
    seconds = time.perf_counter() - started
    return {"cases": done, "seconds": seconds, "cases_per_s": done / seconds}


def embed_sample(settings: Settings, sample_rows: list[dict]) -> dict:
    """Embedding throughput with the real model through casekb's pipeline, on a few cases in their own
    library and a cold cache; then a rebuild of unchanged cases and a second embed, which must find
    nothing to embed (vectors carried over by text hash), and every passage must be in the cache."""
    from indexer.embeddings import EmbeddingCache, Encoder, text_hash

    home = settings.home / "embed-sample"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    sample = dataclasses.replace(settings, home=home, database_url=f"sqlite:///{home / 'casekb.sqlite3'}")
    rows_file = home / "sample.jsonl"
    rows_file.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in sample_rows), encoding="utf-8")
    db = _database(sample)
    import_file(db, sample, rows_file)
    indexer = Indexer(db, open_backend(sample))
    indexer.drain()
    started = time.perf_counter()
    encoder = Encoder(sample.embedding_model_dir, home / "embeddings.sqlite3")
    load_seconds = time.perf_counter() - started
    texts = indexer.backend.stored_texts(sorted(indexer.backend.text_hashes()))
    chars = sum(len(p) for title, text in texts.values() for p in passage_inputs(title, text))
    started = time.perf_counter()
    cases = indexer.embed(encoder)
    seconds = time.perf_counter() - started
    passages = encoder.encoded
    indexer.reindex()
    again = indexer.embed(encoder)
    hashes = [text_hash(p) for title, text in texts.values() for p in passage_inputs(title, text)]
    misses = len(set(hashes)) - len(EmbeddingCache(home / "embeddings.sqlite3", encoder.name).get(hashes))
    return {"cases": cases, "passages": passages, "chars": chars, "seconds": seconds, "model_load_s": load_seconds,
            "cases_per_s": cases / seconds, "chars_per_s": chars / seconds, "passages_per_s": passages / seconds,
            "cases_reembedded_after_rebuild": again, "passages_reencoded_after_rebuild": encoder.encoded - passages,
            "cache_misses": misses}


def disk_mb(path: Path) -> float:
    """Size of a file, or of every file under a folder, in MiB."""
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20 if path.exists() else 0.0
