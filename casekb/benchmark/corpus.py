"""A deterministic benchmark corpus of any size, recombined from the demo cases' own sentences.

Case i starts from a demo case (its "source") and swaps about half of its sentences for sentences
at the same relative place in other demo cases of the same cause, so texts stay realistic. Its
mediation metadata (region, dates, outcome, amount) is synthetic, so that filters can be exercised.
Every case is drawn from its own seeded generator: the first 10,000 cases of the 100k corpus are the
10k corpus.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import random
import re
from collections import defaultdict
from pathlib import Path

GENERATOR_VERSION = 1
SHARD_ROWS = 50_000
SWAP_SHARE = 0.5
REGIONS = ("荣昌区", "永川区", "江北区", "渝中区", "万州区", "涪陵区", "綦江区", "大足区", "璧山区", "铜梁区",
           "潼南区", "合川区")
OUTCOMES = (("成功", 80), ("不成功", 15), ("终止", 5))
INTAKES = ("主动调解", "申请调解", "委托移送")
FIRST_DAY = dt.date(2019, 1, 1)
DAYS = 2860
_SENTENCE_END = re.compile(r"(?<=[。；！？!?;])")
_CLAUSE_END = re.compile(r"(?<=[，,])")


def sentences(text: str) -> list[str]:
    """A text cut after sentence ends, or after commas when it has fewer than four sentences."""
    parts = [part for part in _SENTENCE_END.split(text) if part.strip()]
    if len(parts) < 4:
        parts = [part for part in _CLAUSE_END.split(text) if part.strip()]
    return parts


def _load_sources(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        row["sentences"] = sentences(html.unescape(row["text"]))
    return rows


def _recombined_text(source: dict, same_cause: list[dict], rng: random.Random) -> str:
    own = source["sentences"]
    out = []
    for position, sentence in enumerate(own):
        donor = rng.choice(same_cause)
        if donor is not source and rng.random() < SWAP_SHARE:
            place = min(len(donor["sentences"]) - 1, position * len(donor["sentences"]) // len(own))
            sentence = donor["sentences"][place]
        out.append(sentence)
    return "".join(out)


def generated_case(number: int, sources: list[dict], by_cause: dict[str, list[dict]], seed: int) -> dict:
    """Case `number` of every corpus built with `seed`: same number, same case."""
    rng = random.Random(f"{seed}-{number}")
    source = rng.choice(sources)
    received = FIRST_DAY + dt.timedelta(days=rng.randrange(DAYS))
    outcome = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
    row = {
        "id": f"bench-{number:07d}", "title": source["title"], "category": source["category"],
        "cause": source.get("cause") or None, "source": "casekb bench", "source_case": source["id"],
        "text": _recombined_text(source, by_cause[source.get("cause") or source["category"]], rng),
        "region": rng.choice(REGIONS), "intake": rng.choice(INTAKES), "outcome": outcome,
        "received_on": received.isoformat(),
        "closed_on": (received + dt.timedelta(days=rng.randint(1, 60))).isoformat(),
    }
    if outcome == "成功" and rng.random() < 0.7:
        row["agreed_amount"] = min(round(rng.lognormvariate(9.5, 1.2), -2), 9_999_999)
    return row


def generate_corpus(source_file: Path, size: int, folder: Path, seed: int = 7) -> list[Path]:
    """Write (or reuse) the corpus as JSONL shards of SHARD_ROWS cases under `folder`; their paths."""
    manifest_path = folder / "corpus.json"
    wanted = {"version": GENERATOR_VERSION, "size": size, "seed": seed, "source": str(source_file)}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {k: manifest.get(k) for k in wanted} == wanted:
            return [folder / name for name in manifest["files"]]
    folder.mkdir(parents=True, exist_ok=True)
    sources = _load_sources(source_file)
    by_cause = defaultdict(list)
    for row in sources:
        by_cause[row.get("cause") or row["category"]].append(row)
    files = []
    for shard, start in enumerate(range(0, size, SHARD_ROWS)):
        path = folder / f"cases-{shard:03d}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for number in range(start, min(size, start + SHARD_ROWS)):
                out.write(json.dumps(generated_case(number, sources, by_cause, seed), ensure_ascii=False) + "\n")
        files.append(path)
    manifest_path.write_text(json.dumps({**wanted, "files": [p.name for p in files]}))
    return files


def read_cases(files: list[Path], limit: int | None = None):
    """The corpus rows in order, the first `limit` only when given."""
    count = 0
    for path in files:
        with path.open(encoding="utf-8") as rows:
            for line in rows:
                if limit is not None and count >= limit:
                    return
                count += 1
                yield json.loads(line)
