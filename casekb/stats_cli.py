"""`casekb stats` and `casekb alerts`: statistics, exports, the scale benchmark and early warning."""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import click
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from casekb.filter_options import DATE, case_filter_options
from kb.filters import Filters
from kb.statistics import (DIMENSIONS, LINKED_DATABASES, LINKED_DIMENSIONS, ORGANISATION_DIMENSIONS, case_measures,
                           database_sizes, linked_counts, organisation_structure, personnel, refresh_if_stale,
                           refresh_summary)

console = Console()


def _day(value: dt.datetime | None) -> dt.date | None:
    return value.date() if value else None


@click.group(invoke_without_command=True)
@click.option("--by", multiple=True, type=click.Choice(DIMENSIONS), help="Slice by (repeat for a cross table).")
@case_filter_options
@click.option("--parent", type=int, help="With --by organisation: the children of this organisation.")
@click.option("--as-of", type=DATE, help="Day the overdue count is taken on (default today).")
@click.option("--time-limit", default=30, show_default=True, type=click.IntRange(min=1),
              help="Days after which an open case is overdue.")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), help="Write CSV here.")
@click.option("--xlsx", "xlsx_file", type=click.Path(dir_okay=False, path_type=Path), help="Write XLSX here.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats(click_ctx: click.Context, by, filter_fields, parent, as_of, time_limit, csv_file, xlsx_file,
          as_json) -> None:
    """Case measures: `casekb stats --by region --by category --from 2025-01-01 --xlsx out.xlsx`."""
    if click_ctx.invoked_subcommand:
        return
    from casekb.stats_export import table

    filters = Filters(**filter_fields)
    _refresh_if_stale(click_ctx.obj.db)
    with click_ctx.obj.db.sessions() as session:
        rows = case_measures(session, filters, by, parent=parent or filters.organisation_id, as_of=_day(as_of),
                             time_limit_days=time_limit)
    header, body = table(rows, by)
    _write_files(header, body, csv_file, xlsx_file)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], ensure_ascii=False, indent=2))
        return
    shown = list(by) + ["received", "closed", "success_rate", "unsuccessful", "average_duration_days",
                        "p90_duration_days", "overdue", "exemplars", "average_review_score", "average_satisfaction"]
    view = Table(title=f"{len(rows)} rows")
    for column in shown:
        view.add_column(column)
    for row in body:
        values = dict(zip(header, row))
        view.add_row(*("" if values[c] is None else str(values[c]) for c in shown))
    console.print(view)


def _refresh_if_stale(db) -> None:
    """Rebuild a summary that edits made stale, so this and later queries read it again."""
    started = time.perf_counter()
    with db.transaction() as session:
        rows = refresh_if_stale(session)
    if rows is not None:
        click.echo(f"stale summary rebuilt: {rows} rows in {time.perf_counter() - started:.1f} s", err=True)


def _write_files(header: list[str], body: list[list], csv_file: Path | None, xlsx_file: Path | None) -> None:
    from casekb.stats_export import to_csv, to_xlsx

    if csv_file:
        csv_file.write_text("\ufeff" + to_csv(header, body), encoding="utf-8")
    if xlsx_file:
        xlsx_file.write_bytes(to_xlsx(header, body))


@stats.command(name="databases")
@click.argument("database", required=False, type=click.Choice(list(LINKED_DATABASES) + ["organisations"]))
@click.option("--by", multiple=True, type=click.Choice(tuple(dict.fromkeys(LINKED_DIMENSIONS + ORGANISATION_DIMENSIONS))),
              help="Slice by (repeat for a cross table; organisations: one of organisation, level).")
@case_filter_options
@click.option("--parent", type=int, help="With --by organisation: the children of this organisation.")
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, path_type=Path), help="Write CSV here.")
@click.option("--xlsx", "xlsx_file", type=click.Path(dir_okay=False, path_type=Path), help="Write XLSX here.")
@click.pass_obj
def databases(ctx, database, by, filter_fields, parent, csv_file, xlsx_file) -> None:
    """Without DATABASE: rows in each of the nine databases, mediators and experts by structure. With one:
    its rows sliced by their cases (filters apply to the cases) and its own kind (parties: role; organisations:
    by subtree or level, with their mediators and cases), e.g. `casekb stats databases parties --by role`."""
    from casekb.stats_export import count_table

    with ctx.db.sessions() as session:
        if database is None:
            if by or parent or csv_file or xlsx_file or Filters(**filter_fields).active():
                raise click.UsageError("slicing, filters and files need a DATABASE, e.g. `stats databases parties`")
            click.echo(json.dumps({"databases": database_sizes(session), "personnel": personnel(session).as_dict()},
                                  ensure_ascii=False, indent=2))
            return
        filters = Filters(**filter_fields)
        parent = parent or filters.organisation_id
        try:
            if database == "organisations":
                if len(by) > 1:
                    raise ValueError("organisations are sliced by one dimension at a time")
                by = by or ("organisation",)
                rows = organisation_structure(session, filters, by[0], parent)
            else:
                rows = linked_counts(session, database, filters, by, parent)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--by") from None
    header, body = count_table(rows, by)
    _write_files(header, body, csv_file, xlsx_file)
    view = Table(title=f"{database}: {len(rows)} rows")
    for column in header:
        view.add_column(column)
    for row in body:
        view.add_row(*("" if value is None else str(value) for value in row))
    console.print(view)


@stats.command(name="refresh")
@click.pass_obj
def refresh(ctx) -> None:
    """Rebuild the monthly summary the dashboards read (run after imports, e.g. from cron)."""
    started = time.perf_counter()
    with ctx.db.transaction() as session:
        rows = refresh_summary(session)
    click.echo(f"summary rebuilt: {rows} rows in {time.perf_counter() - started:.1f} s")


@stats.command(name="bench")
@click.option("--records", default=400_000, show_default=True, type=click.IntRange(min=100))
@click.option("--repeats", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--database-url", help="Bench database (default: SQLite under the data dir); must be empty.")
@click.option("--seed", default=2024, show_default=True, type=int)
@click.pass_obj
def bench(ctx, records: int, repeats: int, database_url: str | None, seed: int) -> None:
    """Generate deterministic synthetic records into a separate database and time every dashboard query."""
    from sqlalchemy import func, select

    from casekb.stats_bench import give_amounts, measure
    from corpus.synthetic_records import generate
    from kb.db import Database, migrate
    from kb.models import DisputeCase

    url = database_url or f"sqlite:///{ctx.settings.home / 'bench' / f'stats-{records}-{seed}.sqlite3'}"
    db = Database(url)
    migrate(db.engine)
    with db.sessions() as session:
        present = session.scalar(select(func.count()).select_from(DisputeCase))
    if present == 0:
        started = time.perf_counter()
        generate(db.engine, records, seed)
        click.echo(f"generated {records} records in {time.perf_counter() - started:.1f} s")
    elif present != records:
        raise click.ClickException(f"{url} holds {present} records, not {records}; give an empty database")
    give_amounts(db)
    started = time.perf_counter()
    with db.transaction() as session:
        rows = refresh_summary(session)
    click.echo(f"summary: {rows} rows in {time.perf_counter() - started:.1f} s ({db.engine.dialect.name})")
    view = Table(title=f"dashboard queries, {records} records, {repeats} runs each")
    for column in ("query", "p50 ms", "p95 ms"):
        view.add_column(column)
    for name, p50, p95 in measure(db, repeats):
        view.add_row(name, f"{p50:.1f}", f"{p95:.1f}")
    console.print(view)
    db.dispose()


@click.command()
@click.option("--as-of", type=DATE, help="Evaluate the last complete window before this day (default today).")
@click.option("--since", type=DATE, help="Also evaluate every complete window from this day on.")
@click.option("--load", "indicator_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Create or update indicators from a TOML file first.")
@click.option("--list", "list_only", is_flag=True, help="List stored alerts; evaluate nothing.")
@click.option("--open", "open_only", is_flag=True, help="With --list: unacknowledged alerts only.")
@click.option("--ack", type=int, help="Acknowledge the alert with this id.")
@click.option("--by", "ack_by", default="cli", show_default=True, help="Who acknowledges.")
@click.pass_obj
def alerts(ctx, as_of, since, indicator_file, list_only, open_only, ack, ack_by) -> None:
    """Early warning: evaluate the indicators (for cron), list alerts, or acknowledge one."""
    from kb.early_warning import acknowledge, evaluate_all, list_alerts, read_indicator_file, save_indicator

    if not (list_only or ack is not None):
        _refresh_if_stale(ctx.db)  # cron runs this: it keeps the dashboards on the summary
    with ctx.db.transaction() as session:
        if indicator_file:
            try:
                specs = read_indicator_file(indicator_file)
            except (ValidationError, ValueError) as exc:
                raise click.ClickException(f"{indicator_file}: {exc}") from None
            for spec in specs:
                save_indicator(session, spec)
            click.echo(f"{len(specs)} indicators loaded from {indicator_file}")
        if ack is not None:
            alert = acknowledge(session, ack, ack_by)
            if alert is None:
                raise click.ClickException(f"there is no alert {ack}")
            click.echo(f"alert {ack} acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at:%Y-%m-%d %H:%M}")
            return
        if list_only:
            shown = list_alerts(session, open_only)
        else:
            shown = evaluate_all(session, _day(as_of) or dt.date.today(), _day(since))
            click.echo(f"{len(shown)} new alerts")
        for alert in shown:
            state = f"acknowledged by {alert.acknowledged_by}" if alert.acknowledged_at else "open"
            click.echo(f"#{alert.id} {alert.indicator.name} {alert.window_start}..{alert.window_end}: "
                       f"value {alert.value:g}, baseline {alert.baseline if alert.baseline is None else round(alert.baseline, 3)}"
                       f" ({alert.evidence.get('reason')}) [{state}]")
