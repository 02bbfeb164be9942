"""Passage vectors of cases in faiss: exact search under a size threshold, HNSW above it.

Row i of the faiss index holds the passage `keys[i]` (case id and passage number packed in one
integer). A filter on cases becomes a selector of rows that faiss applies inside the search, so
nothing is over-fetched and dropped. HNSW cannot remove rows: replaced passages are marked dead
and left out by the same selector until the next rebuild.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import faiss
import numpy as np

PASSAGE_BITS = 10
MAX_PASSAGE = (1 << PASSAGE_BITS) - 1
#: A rebuild with more passages than this uses HNSW instead of exact search.
HNSW_THRESHOLD = 200_000
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 256
#: Under this many allowed passages a filtered HNSW search scores them exactly instead.
EXACT_SCAN_LIMIT = 50_000
#: A filtered HNSW search deeper than this many passages scores the allowed rows exactly instead: under a
#: filter the graph walk slows down steeply with depth and may still come back short.
HNSW_FILTERED_LIMIT = 5_000


@dataclass(frozen=True)
class PassageMatch:
    case_id: int
    passage: int
    score: float


def best_per_case(matches: Iterable[PassageMatch]) -> list[PassageMatch]:
    """The first (best) passage of each case, in rank order."""
    seen, best = set(), []
    for match in matches:
        if match.case_id not in seen:
            seen.add(match.case_id)
            best.append(match)
    return best


class VectorIndex:
    """Normalised passage vectors searched by inner product (= cosine)."""

    def __init__(self, index: faiss.Index, keys: np.ndarray, alive: np.ndarray, model: str = "",
                 text_hashes: dict[int, int] | None = None):
        self.index, self.keys, self.alive = index, keys, alive
        self._row_cases: np.ndarray | None = None
        #: the embedding model's fingerprint: vectors of another model are never mixed in
        self.model = model
        #: case id -> hash of the text its vectors were computed from
        self.text_hashes = text_hashes or {}

    @classmethod
    def create(cls, dim: int, model: str = "", expected_passages: int = 0) -> VectorIndex:
        index = (faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
                 if expected_passages > HNSW_THRESHOLD else faiss.IndexFlatIP(dim))
        return cls(index, np.empty(0, dtype="int64"), np.empty(0, dtype=bool), model)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        with np.load(path) as stored:
            hashes = dict(zip(stored["hashed_cases"].tolist(), stored["hashes"].tolist()))
            return cls(_read_faiss(path), stored["keys"], stored["alive"], str(stored["model"]), hashes)

    def save(self, path: Path) -> None:
        """One file (an .npz), written beside the live one and renamed over it: readers never see half.
        The faiss index streams into the file and back out of it, never held as a second copy in memory
        (at 1M cases it is gigabytes)."""
        partial = path.with_name(path.name + ".partial")
        arrays = {"keys": self.keys, "alive": self.alive, "model": np.array(self.model),
                  "hashed_cases": np.array(list(self.text_hashes), dtype="int64"),
                  "hashes": np.array(list(self.text_hashes.values()), dtype="int64")}
        with partial.open("wb") as file, zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            _write_faiss(archive, self.index)
            for name, array in arrays.items():  # as np.savez writes them
                with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)
        os.replace(partial, path)

    @property
    def dim(self) -> int:
        return self.index.d

    @property
    def exact(self) -> bool:
        return isinstance(self.index, faiss.IndexFlat)

    def __len__(self) -> int:
        return int(self.alive.sum())

    def case_ids(self) -> np.ndarray:
        return np.unique(self.keys[self.alive] >> PASSAGE_BITS)

    def remove_cases(self, case_ids) -> None:
        for case_id in case_ids:
            self.text_hashes.pop(int(case_id), None)
        rows = np.flatnonzero(self.alive & np.isin(self.keys >> PASSAGE_BITS, np.asarray(case_ids, dtype="int64")))
        if not len(rows):
            return
        if self.exact:
            self.index.remove_ids(faiss.IDSelectorBatch(rows.astype("int64")))
            self.keys, self.alive = np.delete(self.keys, rows), np.delete(self.alive, rows)
            self._row_cases = None
        else:
            self.alive[rows] = False

    def add_case(self, case_id: int, vectors: np.ndarray, text_hash: int = 0) -> None:
        """Store a case's passage vectors, replacing any it had."""
        self.remove_cases([case_id])
        self.text_hashes[case_id] = text_hash
        vectors = np.ascontiguousarray(vectors[:MAX_PASSAGE + 1], dtype="float32")
        keys = (np.int64(case_id) << PASSAGE_BITS) | np.arange(len(vectors), dtype="int64")
        self.index.add(vectors)
        self.keys = np.concatenate([self.keys, keys])
        self.alive = np.concatenate([self.alive, np.ones(len(keys), dtype=bool)])
        self._row_cases = None

    def _cases_of_rows(self) -> np.ndarray:
        """The case id of every row (computed once per change, not per search)."""
        if self._row_cases is None:
            self._row_cases = self.keys >> PASSAGE_BITS
        return self._row_cases

    def _allowed_rows(self, allowed_cases) -> np.ndarray:
        """Row mask of the live passages of `allowed_cases`: a lookup table by case id, one gather."""
        row_cases = self._cases_of_rows()
        allowed_cases = np.asarray(allowed_cases, dtype="int64")
        if not len(allowed_cases) or not len(row_cases):
            return np.zeros(len(row_cases), dtype=bool)
        table = np.zeros(max(int(row_cases.max()), int(allowed_cases.max())) + 1, dtype=bool)
        table[allowed_cases[allowed_cases >= 0]] = True
        return self.alive & table[row_cases]

    def case_vector(self, case_id: int) -> np.ndarray | None:
        """The normalised mean of a case's passage vectors (what the case is about), if it has any."""
        rows = np.flatnonzero(self.alive & ((self.keys >> PASSAGE_BITS) == case_id))
        if not len(rows):
            return None
        mean = np.vstack([self.index.reconstruct(int(r)) for r in rows]).mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype("float32")

    def search(self, query: np.ndarray, limit: int, allowed_cases: np.ndarray | None = None) -> list[PassageMatch]:
        """The best passages for a normalised query vector, from `allowed_cases` only when given."""
        return _Rows(self, allowed_cases).search(query, limit)

    def best_cases(self, query: np.ndarray, depth: int, allowed_cases: np.ndarray | None = None) -> list[PassageMatch]:
        """The `depth` best cases by their best passage (fewer if fewer are allowed): the best passages,
        deeper until they cover `depth` cases; when HNSW's walk cannot find that many under a filter, the
        allowed rows scored exactly."""
        rows = _Rows(self, allowed_cases)
        passages, exact = depth * 3, False
        while True:
            scores, found = rows.find(query, passages, exact)
            # each case's first (best) row, in rank order, without a Python object per passage
            _, first = np.unique(self._cases_of_rows()[found], return_index=True)
            first.sort()
            if len(first) >= depth or passages >= rows.count:
                return [self._match(found[i], scores[i]) for i in first[:depth]]
            exact = exact or not rows.everything and passages * 4 > HNSW_FILTERED_LIMIT
            passages *= 4

    def exact_search(self, query: np.ndarray, limit: int) -> list[PassageMatch]:
        """The true best passages by scoring every live row (what HNSW approximates; for measuring its recall)."""
        return _Rows(self, None).search(query, limit, exact=True)

    def _match(self, row: int, score: float) -> PassageMatch:
        key = int(self.keys[row])
        return PassageMatch(key >> PASSAGE_BITS, key & MAX_PASSAGE, float(score))


def _write_faiss(archive: zipfile.ZipFile, index: faiss.Index) -> None:
    """The serialised index as the uint8 array `index` of the .npz (what np.savez of faiss.serialize_index
    writes), streamed: a first pass counts its bytes for the array's header."""
    size = [0]
    faiss.write_index(index, faiss.PyCallbackIOWriter(lambda data: size.__setitem__(0, size[0] + len(data))))
    with archive.open("index.npy", "w", force_zip64=True) as entry:
        np.lib.format.write_array_header_1_0(entry, {"descr": "|u1", "fortran_order": False, "shape": (size[0],)})
        faiss.write_index(index, faiss.PyCallbackIOWriter(entry.write))


def _read_faiss(path: Path) -> faiss.Index:
    """The faiss index of a saved .npz, streamed out of its `index` array."""
    with zipfile.ZipFile(path) as archive, archive.open("index.npy") as entry:
        version = np.lib.format.read_magic(entry)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None or read_header(entry)[2] != np.dtype("uint8"):
            with np.load(path) as stored:
                return faiss.deserialize_index(stored["index"])
        return faiss.read_index(faiss.PyCallbackIOReader(entry.read))


class _Rows:
    """The rows one search may return (live ones, of the allowed cases), as a bitmap faiss tests per candidate."""

    def __init__(self, vectors: VectorIndex, allowed_cases: np.ndarray | None):
        self.vectors = vectors
        mask = vectors.alive if allowed_cases is None else vectors._allowed_rows(allowed_cases)
        self.everything = allowed_cases is None and bool(vectors.alive.all())
        self.count = len(vectors.keys) if self.everything else int(mask.sum())
        self.selector = None if self.everything else faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))

    def search(self, query: np.ndarray, limit: int, exact: bool = False) -> list[PassageMatch]:
        scores, found = self.find(query, limit, exact)
        return [self.vectors._match(row, score) for score, row in zip(scores, found)]

    def find(self, query: np.ndarray, limit: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows of the best `limit` allowed passages, best first."""
        vectors = self.vectors
        if limit < 1 or not self.count:
            return np.empty(0, dtype="float32"), np.empty(0, dtype="int64")
        query = np.ascontiguousarray(query.reshape(1, -1), dtype="float32")
        if vectors.exact:
            searched, params = vectors.index, faiss.SearchParameters(sel=self.selector)
        elif exact or self.selector is not None and self.count <= EXACT_SCAN_LIMIT:
            # Few rows left (or asked): score them exactly in HNSW's flat storage rather than walk a sparse graph.
            searched, params = faiss.downcast_index(vectors.index.storage), faiss.SearchParameters(sel=self.selector)
        else:
            searched = vectors.index
            params = faiss.SearchParametersHNSW(sel=self.selector, efSearch=max(HNSW_EF_SEARCH, limit))
        scores, found = searched.search(query, min(limit, self.count), params=params)
        kept = found[0] >= 0
        return scores[0][kept], found[0][kept]
