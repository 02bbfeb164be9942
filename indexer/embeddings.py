"""Passage and query embeddings, cached by (text hash, model) so unchanged text is never re-embedded."""
from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from indexer.embedding_model import load_model, set_torch_threads

Progress = Callable[[int], None]
PRECISIONS = ("auto", "fp32", "bf16")
#: Torch threads for a query: one short text is computed fastest on one thread (a second one mostly
#: waits, and on a busy machine spins), and concurrent searches then each keep to a core.
QUERY_THREADS = 1


def cpu_has_bf16() -> bool:
    """Whether this CPU does bfloat16 arithmetic natively (AVX512-BF16 or AMX), where bf16 pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    """"auto" is bf16 on CPUs that do it natively and fp32 elsewhere (emulated bf16 is slower)."""
    if precision not in PRECISIONS:
        raise ValueError(f"embedding precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    return precision


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_fingerprint(folder: Path) -> str:
    """Name and version of a model folder: its name plus a hash of its config and weights' ends."""
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "config_sentence_transformers.json"):
        path = folder / name
        digest.update(path.read_bytes() if path.exists() else b"")
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        with weights.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, weights.stat().st_size - (1 << 20)))
            digest.update(handle.read())
    return f"{folder.name}:{digest.hexdigest()[:16]}"


def _linear_weights_in_bf16(model) -> None:
    """Store the matrix weights in bfloat16 once: autocast casts them to exactly these values on every call
    (part of every short query's time); the vectors stay bit for bit the same, and the model takes less memory."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)


class EmbeddingCache:
    """Vectors by (model, text hash) in a SQLite file beside the index."""

    def __init__(self, path: Path, model: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (model TEXT, hash TEXT, vector BLOB, "
                         "PRIMARY KEY (model, hash))")
        self._lock = threading.Lock()
        self.model = model

    def get(self, hashes: list[str]) -> dict[str, np.ndarray]:
        found = {}
        with self._lock:
            for start in range(0, len(hashes), 500):
                chunk = hashes[start:start + 500]
                rows = self._db.execute(
                    f"SELECT hash, vector FROM embeddings WHERE model = ? AND hash IN ({','.join('?' * len(chunk))})",
                    [self.model, *chunk])
                found.update((h, np.frombuffer(v, dtype="float32")) for h, v in rows)
        return found

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                                 [(self.model, h, v.astype("float32").tobytes()) for h, v in vectors.items()])


class Encoder:
    """A sentence-transformers model with e5's prompts, batched, with the cache in front."""

    def __init__(self, folder: Path, cache_path: Path, batch_size: int = 16, threads: int | None = None,
                 precision: str = "auto"):
        self.model = load_model(folder, threads)
        #: torch threads for batches of passages (torch's setting is per calling thread: each encode sets its own)
        self.threads = set_torch_threads(threads)
        #: "bf16" runs the model under torch's CPU autocast: matrix products in bfloat16, norms and
        #: pooling in fp32; its vectors match fp32's to cosine 0.9999 (tested), so both share the cache.
        self.precision = resolve_precision(precision)
        if self.precision == "bf16":
            _linear_weights_in_bf16(self.model)
        self.name = model_fingerprint(Path(folder))
        self.cache = EmbeddingCache(cache_path, self.name)
        self._caches = {"passage": self.cache}
        self.batch_size = batch_size
        self.dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") \
            else self.model.get_sentence_embedding_dimension()
        #: texts actually run through the model (cache misses), for progress and tests
        self.encoded = 0
        self._prompts = getattr(self.model, "prompts", {}) or {}

    def _encode(self, texts: list[str], prompt: str, threads: int | None = None) -> np.ndarray:
        import torch

        set_torch_threads(threads or self.threads)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" \
            else contextlib.nullcontext()
        with autocast:
            return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                     prompt_name=prompt if prompt in self._prompts else None,
                                     convert_to_numpy=True, show_progress_bar=False).astype("float32")

    def query(self, text: str) -> np.ndarray:
        return self._encode([text], "query", QUERY_THREADS)[0]

    def passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        """Embeddings of passages, taking what the cache has and embedding (and caching) the rest."""
        return self.cached(texts, "passage", progress)

    def _cache_for(self, prompt: str) -> EmbeddingCache:
        # Passage vectors keep the plain model key, so caches written before prompts were keyed still hit.
        if prompt not in self._caches:
            self._caches[prompt] = EmbeddingCache(self.cache.path, f"{self.name}|{prompt}")
        return self._caches[prompt]

    def cached(self, texts: list[str], prompt: str, progress: Progress | None = None) -> np.ndarray:
        """Embeddings of texts under one prompt ("passage" or "query"), cached like passages."""
        cache = self._cache_for(prompt)
        hashes = [text_hash(t) for t in texts]
        known = cache.get(list(set(hashes)))
        missing = list(dict.fromkeys(h for h in hashes if h not in known))
        by_hash = {h: t for h, t in zip(hashes, texts)}
        for start in range(0, len(missing), self.batch_size * 4):
            chunk = missing[start:start + self.batch_size * 4]
            fresh = dict(zip(chunk, self._encode([by_hash[h] for h in chunk], prompt)))
            self.encoded += len(chunk)
            cache.put(fresh)
            known.update(fresh)
            if progress:
                progress(len(chunk))
        if not texts:
            return np.empty((0, self.dim), dtype="float32")
        return np.vstack([known[h] for h in hashes])
