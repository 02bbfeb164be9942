"""statistics summary and early warning

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

def _grain() -> list[sa.Column]:
    return [sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("month", sa.String(7), nullable=True),
            sa.Column("organisation_id", sa.Integer(), nullable=True),
            sa.Column("region", sa.String(100), nullable=True),
            sa.Column("category", sa.String(50), nullable=False),
            sa.Column("outcome", sa.String(10), nullable=True)]


def upgrade() -> None:
    sums = ("cases", "closed", "timed", "duration_sum", "satisfaction_n", "satisfaction_sum", "exemplars",
            "review_n", "review_sum")
    op.create_table("stats_case_months", *_grain(), sa.Column("destination", sa.String(20), nullable=True),
                    *(sa.Column(name, sa.Integer(), nullable=False) for name in sums))
    op.create_index("ix_stats_case_months_month", "stats_case_months", ["month"])
    op.create_table("stats_case_durations", *_grain(), sa.Column("days", sa.Integer(), nullable=False),
                    sa.Column("cases", sa.Integer(), nullable=False))
    op.create_index("ix_stats_case_durations_month", "stats_case_durations", ["month"])
    op.create_table("stats_refreshes",
                    sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("refreshed_at", sa.DateTime(), nullable=False),
                    sa.Column("changes", sa.Integer(), nullable=False))
    state = op.create_table("stats_state",
                            sa.Column("id", sa.Integer(), primary_key=True),
                            sa.Column("changes", sa.Integer(), nullable=False))
    # The one counter row exists from the start, so writers only ever update it.
    op.bulk_insert(state, [{"id": 1, "changes": 0}])
    # Open cases are few: the overdue count becomes a short range scan.
    op.create_index("ix_dispute_cases_closed_received", "dispute_cases", ["closed_on", "received_on"])
    # Covering indexes: the raw-row measures of a day range or a cause never read the wide case rows.
    covered = ["category", "region", "organisation_id", "outcome", "closed_on", "satisfaction"]
    op.create_index("ix_dispute_cases_stats_received", "dispute_cases", ["received_on", "cause", *covered])
    op.create_index("ix_dispute_cases_stats_cause", "dispute_cases", ["cause", "received_on", *covered])

    op.create_table("surge_indicators",
                    sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("name", sa.String(100), nullable=False, unique=True),
                    sa.Column("description", sa.Text(), nullable=False),
                    sa.Column("enabled", sa.Boolean(), nullable=False),
                    sa.Column("categories", sa.JSON(), nullable=False),
                    sa.Column("causes", sa.JSON(), nullable=False),
                    sa.Column("regions", sa.JSON(), nullable=False),
                    sa.Column("organisation_id", sa.Integer(), nullable=True),
                    sa.Column("metric", sa.String(10), nullable=False),
                    sa.Column("window", sa.String(10), nullable=False),
                    sa.Column("baseline", sa.String(20), nullable=False),
                    sa.Column("baseline_windows", sa.Integer(), nullable=False),
                    sa.Column("rule", sa.String(10), nullable=False),
                    sa.Column("threshold", sa.Float(), nullable=False),
                    sa.Column("min_count", sa.Integer(), nullable=False),
                    sa.Column("updated_at", sa.DateTime(), server_default=sa.func.now(), nullable=False))
    op.create_table("surge_alerts",
                    sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("indicator_id", sa.Integer(),
                              sa.ForeignKey("surge_indicators.id", ondelete="CASCADE"), nullable=False),
                    sa.Column("window_start", sa.Date(), nullable=False),
                    sa.Column("window_end", sa.Date(), nullable=False),
                    sa.Column("value", sa.Float(), nullable=False),
                    sa.Column("baseline", sa.Float(), nullable=True),
                    sa.Column("evidence", sa.JSON(), nullable=False),
                    sa.Column("raised_at", sa.DateTime(), nullable=False),
                    sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
                    sa.Column("acknowledged_by", sa.String(100), nullable=True),
                    sa.UniqueConstraint("indicator_id", "window_start"))


def downgrade() -> None:
    op.drop_table("surge_alerts")
    op.drop_table("surge_indicators")
    op.drop_index("ix_dispute_cases_stats_cause", "dispute_cases")
    op.drop_index("ix_dispute_cases_stats_received", "dispute_cases")
    op.drop_index("ix_dispute_cases_closed_received", "dispute_cases")
    op.drop_table("stats_state")
    op.drop_table("stats_refreshes")
    op.drop_table("stats_case_durations")
    op.drop_table("stats_case_months")
