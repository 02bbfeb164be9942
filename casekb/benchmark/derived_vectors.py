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
import time
from collections import defaultdict
from pathlib import Path

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
CHUNK = 2000


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


def build_vectors(settings: Settings, files: list[Path], real_cache: Path, seed: int = 7) -> dict:
    """Save derived passage vectors of every indexed case into the live generation; what was done."""
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
    rng = np.random.default_rng(seed)
    plan, kinds = [], defaultdict(int)  # (case id, lender, passages) per case
    ids = sorted(hashes)
    for start in range(0, len(ids), CHUNK):
        for case_id, (title, text) in backend.stored_texts(ids[start:start + CHUNK]).items():
            kind, lender = lenders[source_of[external[case_id]]]
            kinds[kind] += 1
            plan.append((case_id, lender, len(passage_inputs(title, text))))
    matrix = np.empty((sum(count for _, _, count in plan), dim), dtype="float32")
    keys = np.empty(len(matrix), dtype="int64")
    row = 0
    for case_id, lender, count in plan:
        base = cached[lender] if lender else rng.standard_normal((1, dim), dtype="float32")
        matrix[row:row + count] = base[np.arange(count) % len(base)]
        keys[row:row + count] = (np.int64(case_id) << PASSAGE_BITS) | np.arange(count, dtype="int64")
        row += count
    for start in range(0, len(matrix), 100_000):  # in slices: at 1M cases the matrix alone is gigabytes
        part = matrix[start:start + 100_000]
        part += rng.standard_normal(part.shape, dtype="float32") * (NOISE / np.sqrt(dim))
        part /= np.linalg.norm(part, axis=1, keepdims=True)
    index = VectorIndex.create(dim, model, expected_passages=len(hashes) * 3)
    index.index.add(matrix)
    VectorIndex(index.index, keys, np.ones(len(keys), dtype=bool), model, hashes).save(backend.vectors_path())
    seconds = time.perf_counter() - started
    return {"cases": len(hashes), "passages": len(keys), "seconds": seconds, "exact": index.exact,
            "lent_by": dict(kinds), "demo_cases_with_cached_vectors": len(cached), "model": model,
            "vectors_mb": backend.vectors_path().stat().st_size / 2**20}


def _model_dim(folder: Path) -> int:
    """Dimensions from the model folder's config, without loading the model."""
    return json.loads((folder / "config.json").read_text())["hidden_size"]
