"""bf16 encoding is a speed choice only: its vectors must stand in for fp32's (they share the cache)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED_DATA
from casekb.config import load_settings
from indexer.embeddings import Encoder, resolve_precision
from indexer.semantic import passage_inputs


def demo_passages(count: int) -> list[str]:
    lines = (SHARED_DATA / "cases_demo.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[::97]]
    return [p for row in rows for p in passage_inputs(row["title"], row["text"])[:2]][:count]


def test_bf16_vectors_match_fp32(model_dir, tmp_path):
    texts = demo_passages(24)
    fp32 = Encoder(model_dir, tmp_path / "fp32.sqlite3", precision="fp32")
    bf16 = Encoder(model_dir, tmp_path / "bf16.sqlite3", precision="bf16")
    a, b = fp32.passages(texts), bf16.passages(texts)
    assert fp32.encoded == bf16.encoded == len(set(texts))
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= 0.999, cosine.min()
    # The same nearest passage for every passage's query vector, under either precision.
    queries = [t[:40] for t in texts]
    qa = np.vstack([fp32.query(q) for q in queries])
    qb = np.vstack([bf16.query(q) for q in queries])
    assert ((qa @ a.T).argmax(axis=1) == (qb @ b.T).argmax(axis=1)).all()


def test_precision_is_checked():
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("auto") in ("fp32", "bf16")
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        load_settings(embedding_precision="fp16")
    with pytest.raises(ValueError, match="one of auto, fp32, bf16"):
        resolve_precision("int8")


def test_queries_run_on_one_torch_thread_and_batches_on_all(model_dir, tmp_path):
    """torch's thread count is per calling thread: a query sets one on its own thread, a batch sets the
    encoder's count back, and a search thread's query never changes the embedding thread's setting."""
    import threading

    import torch

    encoder = Encoder(model_dir, tmp_path / "cache.sqlite3", threads=2)
    seen = {}

    def search_thread():
        encoder.query("借钱不还")
        seen["search"] = torch.get_num_threads()

    worker = threading.Thread(target=search_thread)
    worker.start()
    worker.join()
    assert seen["search"] == 1 and torch.get_num_threads() == 2
    encoder.query("邻居 楼上 漏水")
    assert torch.get_num_threads() == 1
    encoder.passages(demo_passages(2))
    assert torch.get_num_threads() == 2
