"""The case filter options that `casekb search` and `casekb stats` share."""
from __future__ import annotations

import functools

import click

DATE = click.DateTime(["%Y-%m-%d"])
FIELDS = ("categories", "causes", "regions", "outcomes", "organisation_id", "exemplar_only",
          "received_from", "received_to", "amount_min", "amount_max")


def _day(_ctx, _param, value):
    return value.date() if value else None


def case_filter_options(command):
    """Add the filter options; the command gets them as one `filter_fields` dict, whose keys are
    the field names of kb.filters.Filters (which indexer.query re-exports)."""
    @functools.wraps(command)
    def gather(*args, **kwargs):
        filter_fields = {name: kwargs.pop(name) for name in FIELDS}
        bottom, top = filter_fields["amount_min"], filter_fields["amount_max"]
        if bottom is not None and top is not None and top < bottom:
            raise click.BadParameter("must not be below --amount-min", param_hint="--amount-max")
        return command(*args, filter_fields=filter_fields, **kwargs)

    options = [
        click.option("--category", "categories", multiple=True, help="Dispute category; repeatable."),
        click.option("--cause", "causes", multiple=True, help="Cause of action (案由); repeatable."),
        click.option("--region", "regions", multiple=True, help="Region; repeatable."),
        click.option("--outcome", "outcomes", multiple=True, help="成功 / 不成功 / 终止; repeatable."),
        click.option("--organisation", "organisation_id", type=int,
                     help="Organisation id: that committee and everything below it."),
        click.option("--exemplar", "exemplar_only", is_flag=True, help="Exemplar cases only."),
        click.option("--from", "received_from", type=DATE, callback=_day, help="Received on or after."),
        click.option("--to", "received_to", type=DATE, callback=_day, help="Received on or before."),
        click.option("--amount-min", "amount_min", type=click.FloatRange(min=0),
                     help="Smallest agreed amount (yuan)."),
        click.option("--amount-max", "amount_max", type=click.FloatRange(min=0),
                     help="Largest agreed amount (yuan)."),
    ]
    return functools.reduce(lambda wrapped, option: option(wrapped), reversed(options), gather)
