"""Every casekb setting, its default, and the CASEKB_* variable that overrides it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_CATEGORIES = (
    "婚姻家庭", "邻里", "房屋宅基地", "合同", "生产经营", "损害赔偿", "山林土地", "征地拆迁",
    "环境污染", "劳动争议", "消费", "医疗", "道路交通事故", "物业", "其它",
)


def _read_categories(path: str | None) -> tuple[str, ...]:
    """Categories come from a file (one per line) so each region keeps its own list."""
    if not path:
        return DEFAULT_CATEGORIES
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))


@dataclass(frozen=True)
class Settings:
    #: Data directory: the SQLite database and the index files live here.
    home: Path
    #: SQLAlchemy URL of the case library; SQLite under `home` unless set.
    database_url: str
    #: Folder with the shared demo data (cases_demo.jsonl, legal_terms.txt).
    shared_data: Path
    #: Dispute categories accepted on import; a region's own list replaces the default.
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    #: Longest accepted case text, in characters; longer rows are rejected on import.
    max_text_chars: int = 100_000
    #: Largest page size a search may ask for.
    max_page_size: int = 100
    #: Outbox tasks handled per indexing batch.
    index_batch_size: int = 500
    #: Seconds between outbox polls of the background indexer in `casekb serve`.
    index_poll_seconds: float = 2.0
    #: Sentence-transformers folder of the embedding model; None: multilingual-e5-small, converted
    #: by `casekb model install` into `home/models/` (CASEKB_EMBEDDING_MODEL names any other).
    embedding_model: Path | None = None
    #: Torch threads for embedding; None: one per CPU core this process may use.
    embedding_threads: int | None = None
    #: "auto" (bf16 where the CPU does it natively, else fp32), "fp32" or "bf16".
    embedding_precision: str = "auto"
    #: Search backend: "embedded" (tantivy files under `home`) or "elasticsearch" (a cluster at es_url).
    backend: str = "embedded"
    #: Elasticsearch 8 address, e.g. https://search.example:9200.
    es_url: str | None = None
    #: Elasticsearch credentials: an API key, or a user name and password.
    es_api_key: str | None = None
    es_username: str | None = None
    es_password: str | None = None
    #: CA bundle that signed the cluster's certificate; certificates are always verified.
    es_ca_certs: Path | None = None
    #: Alias searched and written; each generation is an index named `<alias>-<generation>`.
    es_index: str = "casekb-cases"
    #: Chinese word segmenter: "rjieba" (Rust port of jieba) or "jieba"; both give the same words.
    segmenter: str = "rjieba"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def default_embedding_model(self) -> Path:
        """Where `casekb model install` converts multilingual-e5-small."""
        return self.home / "models" / "multilingual-e5-small"

    @property
    def embedding_model_dir(self) -> Path:
        return self.embedding_model or self.default_embedding_model

    @property
    def legal_terms(self) -> Path:
        return self.shared_data / "legal_terms.txt"

    @property
    def demo_cases(self) -> Path:
        return self.shared_data / "cases_demo.jsonl"


SEGMENTERS = ("rjieba", "jieba")

ELASTICSEARCH_ENV = {"backend": "CASEKB_BACKEND", "es_url": "CASEKB_ES_URL", "es_api_key": "CASEKB_ES_API_KEY",
                    "es_username": "CASEKB_ES_USERNAME", "es_password": "CASEKB_ES_PASSWORD",
                    "es_ca_certs": "CASEKB_ES_CA_CERTS", "es_index": "CASEKB_ES_INDEX"}


def _elasticsearch_env(env) -> dict:
    """The backend settings that are set in the environment."""
    found = {name: env[var] for name, var in ELASTICSEARCH_ENV.items() if env.get(var)}
    if "es_ca_certs" in found:
        found["es_ca_certs"] = Path(found["es_ca_certs"]).resolve()
    if found.get("backend", "embedded") not in ("embedded", "elasticsearch"):
        raise ValueError(f"CASEKB_BACKEND must be embedded or elasticsearch, not {found['backend']!r}")
    return found


def _segmenter_env(env) -> dict:
    """The segmenter named by CASEKB_SEGMENTER, if it is set."""
    engine = env.get("CASEKB_SEGMENTER")
    if not engine:
        return {}
    if engine not in SEGMENTERS:
        raise ValueError(f"CASEKB_SEGMENTER must be one of {', '.join(SEGMENTERS)}, not {engine!r}")
    return {"segmenter": engine}


def load_settings(**overrides) -> Settings:
    """Settings from the environment, with explicit keyword overrides winning."""
    env = os.environ
    home = Path(overrides.pop("home", None) or env.get("CASEKB_HOME", "var")).resolve()
    database_url = overrides.pop("database_url", None) or env.get("CASEKB_DATABASE_URL") or (
        f"sqlite:///{home / 'casekb.sqlite3'}"
    )
    shared = Path(overrides.pop("shared_data", None) or env.get(
        "CASEKB_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()
    categories = overrides.pop("categories", None) or _read_categories(env.get("CASEKB_CATEGORIES_FILE"))
    if "embedding_model" not in overrides and env.get("CASEKB_EMBEDDING_MODEL"):
        overrides["embedding_model"] = Path(env["CASEKB_EMBEDDING_MODEL"]).resolve()
    if "embedding_threads" not in overrides and env.get("CASEKB_EMBEDDING_THREADS"):
        overrides["embedding_threads"] = int(env["CASEKB_EMBEDDING_THREADS"])
    if "embedding_precision" not in overrides and env.get("CASEKB_EMBEDDING_PRECISION"):
        overrides["embedding_precision"] = env["CASEKB_EMBEDDING_PRECISION"]
    overrides = {**_elasticsearch_env(env), **_segmenter_env(env), **overrides}
    if overrides.get("embedding_precision", "auto") not in ("auto", "fp32", "bf16"):
        raise ValueError(f"CASEKB_EMBEDDING_PRECISION must be auto, fp32 or bf16, "
                         f"not {overrides['embedding_precision']!r}")
    return Settings(home=home, database_url=database_url, shared_data=shared,
                    categories=tuple(categories), **overrides)
