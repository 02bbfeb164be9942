"""Passage vectors for a large generated corpus, derived from real embeddings of the demo cases.

Embedding 100k cases on two CPU cores would take days, so each generated case borrows the real
passage vectors of its source demo case, as the embedding cache holds them (computed by the
installed model from the same masked, titled passages `casekb index` embeds): passage j gets the
source's passage j (cyclically), plus a little seeded noise so no two vectors are identical. A
source without cached vectors lends those of a cached demo case of the same cause, else of the same
category, else a seeded random unit vector; the result says how many cases got which.
casekb's own VectorIndex holds them, saved where `casekb index` saves the live generation's vectors.
"""
from __future__ import annotations

import html
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import faiss
import numpy as np
from sqlalchemy import select

from casekb.config import Settings
from indexer.api import open_backend
from indexer.embeddings import EmbeddingCache, model_fingerprint, text_hash
from indexer.masking import mask_personal_data
from indexer.semantic import passage_inputs
from indexer.vectors import PASSAGE_BITS, VectorIndex
from kb.db import Database
from kb.models import DisputeCase

NOISE = 0.05
#: cases whose texts are read at a time
CHUNK = 2000
#: passages made, noised and added to the index at a time
CHUNK_ROWS = 100_000
PROGRESS_ROWS = 500_000


def _demo_vectors(demo_file: Path, cache: EmbeddingCache) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Demo case id -> its cached passage vectors (cases with all passages cached), and the demo rows."""
    rows = [json.loads(line) for line in demo_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    found = {}
    for row in rows:
        inputs = passage_inputs(html.unescape(row["title"]), mask_personal_data(html.unescape(row["text"]), []))
        hashes = [text_hash(p) for p in inputs]
        cached = cache.get(hashes)
        if all(h in cached for h in hashes):
            found[row["id"]] = np.vstack([cached[h] for h in hashes])
    return found, rows


def _lenders(rows: list[dict], cached: dict[str, np.ndarray]) -> dict[str, tuple[str, str | None]]:
    """Demo id -> (how its vectors were found, the cached demo case lending them or None)."""
    by_cause, by_category = defaultdict(list), defaultdict(list)
    for row in rows:
        if row["id"] in cached:
            by_cause[row.get("cause")].append(row["id"])
            by_category[row["category"]].append(row["id"])
    lenders = {}
    for row in rows:
        if row["id"] in cached:
            lenders[row["id"]] = ("own", row["id"])
        elif by_cause.get(row.get("cause")):
            lenders[row["id"]] = ("same cause", by_cause[row.get("cause")][0])
        elif by_category.get(row["category"]):
            lenders[row["id"]] = ("same category", by_category[row["category"]][0])
        else:
            lenders[row["id"]] = ("random", None)
    return lenders


def build_vectors(settings: Settings, files: list[Path], real_cache: Path, seed: int = 7,
                  chunk_rows: int = CHUNK_ROWS) -> dict:
    """Save derived passage vectors of every indexed case into the live generation; what was done.

    The vectors are made, noised, normalised and added to the faiss index `chunk_rows` at a time, so the
    memory needed is about the index's own (at 1M cases, 4.3M passages: gigabytes) and the same vectors
    come out for any chunk size (the noise is one seeded stream, drawn in row order)."""
    started = time.perf_counter()
    folder = settings.embedding_model_dir
    model = model_fingerprint(folder)
    cached, rows = _demo_vectors(settings.demo_cases, EmbeddingCache(real_cache, model))
    dim = next(iter(cached.values())).shape[1] if cached else _model_dim(folder)
    lenders = _lenders(rows, cached)
    source_of = {}
    for path in files:
        with path.open(encoding="utf-8") as lines:
            source_of.update((r["id"], r["source_case"]) for r in map(json.loads, lines))
    with Database(settings.database_url).sessions() as session:
        external = dict(session.execute(select(DisputeCase.id, DisputeCase.external_id)).all())
    backend = open_backend(settings)
    hashes = backend.text_hashes()
    lent, noise = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    plan, kinds = [], defaultdict(int)  # (case id, the vectors it borrows, passages) per case
    ids = sorted(hashes)
    for start in range(0, len(ids), CHUNK):
        for case_id, (title, text) in backend.stored_texts(ids[start:start + CHUNK]).items():
            kind, lender = lenders[source_of[external[case_id]]]
            kinds[kind] += 1
            base = cached[lender] if lender else lent.standard_normal((1, dim), dtype="float32")
            plan.append((case_id, base, len(passage_inputs(title, text))))
    del source_of, external
    planned = time.perf_counter()
    total = sum(count for _, _, count in plan)
    index = VectorIndex.create(dim, model, expected_passages=len(hashes) * 3)
    _reserve(index.index, total)
    keys, row, add_seconds = np.empty(total, dtype="int64"), 0, 0.0
    for chunk in _chunks(plan, chunk_rows):
        part = np.empty((sum(count for _, _, count in chunk), dim), dtype="float32")
        at = 0
        for case_id, base, count in chunk:
            part[at:at + count] = base[np.arange(count) % len(base)]
            keys[row + at:row + at + count] = (np.int64(case_id) << PASSAGE_BITS) | np.arange(count, dtype="int64")
            at += count
        part += noise.standard_normal(part.shape, dtype="float32") * (NOISE / np.sqrt(dim))
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        adding = time.perf_counter()
        index.index.add(part)
        add_seconds += time.perf_counter() - adding
        row += len(part)
        if total > PROGRESS_ROWS and row // PROGRESS_ROWS != (row - len(part)) // PROGRESS_ROWS:
            print(f"derived vectors: {row:,} of {total:,} passages in the index, "
                  f"{row / add_seconds:,.0f} passages/s", file=sys.stderr, flush=True)
    del plan, part
    saving = time.perf_counter()
    VectorIndex(index.index, keys, np.ones(len(keys), dtype=bool), model, hashes).save(backend.vectors_path())
    seconds = time.perf_counter() - started
    return {"cases": len(hashes), "passages": len(keys), "seconds": seconds, "exact": index.exact,
            "lent_by": dict(kinds), "demo_cases_with_cached_vectors": len(cached), "model": model,
            "vectors_mb": backend.vectors_path().stat().st_size / 2**20, "chunk_rows": chunk_rows,
            "plan_seconds": planned - started, "add_seconds": add_seconds,
            "save_seconds": time.perf_counter() - saving}


def _chunks(plan: list, rows: int):
    """The plan in runs of whole cases of about `rows` passages (more only when one case has more)."""
    chunk, size = [], 0
    for entry in plan:
        if chunk and size + entry[2] > rows:
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry[2]
    if chunk:
        yield chunk


def _reserve(index, rows: int) -> None:
    """Room for `rows` vectors (and their HNSW links) allocated once: growing a std::vector chunk by chunk
    reallocates, briefly holding the old storage beside a new one twice its size (gigabytes at 1M cases).
    A resize up then down to nothing keeps the capacity; faiss then fills it without reallocating."""
    storage = faiss.downcast_index(index.storage) if isinstance(index, faiss.IndexHNSW) else index
    storage.codes.resize(rows * storage.code_size)
    storage.codes.resize(0)
    if isinstance(index, faiss.IndexHNSW):
        # 2M links per vector on level 0, M per higher level; a vector has 1/(M - 1) higher levels on average
        links = index.hnsw.nb_neighbors(0) + index.hnsw.nb_neighbors(1) // 8
        index.hnsw.neighbors.resize(rows * links)
        index.hnsw.neighbors.resize(0)


def _model_dim(folder: Path) -> int:
    """Dimensions from the model folder's config, without loading the model."""
    return json.loads((folder / "config.json").read_text())["hidden_size"]
