"""covering indexes for statistics filtered by agreed amount, and for open cases

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Partial indexes (SQLite and PostgreSQL alike): only cases with an amount, only open cases.
    has_amount = sa.text("agreed_amount IS NOT NULL")
    op.create_index("ix_dispute_cases_stats_amount", "dispute_cases",
                    ["agreed_amount", "received_on", "cause", "category", "region", "organisation_id", "outcome",
                     "closed_on", "satisfaction"], sqlite_where=has_amount, postgresql_where=has_amount)
    still_open = sa.text("closed_on IS NULL")
    op.create_index("ix_dispute_cases_stats_open", "dispute_cases",
                    ["closed_on", "received_on", "organisation_id", "category", "region", "cause", "outcome",
                     "agreed_amount"], sqlite_where=still_open, postgresql_where=still_open)


def downgrade() -> None:
    op.drop_index("ix_dispute_cases_stats_open", "dispute_cases")
    op.drop_index("ix_dispute_cases_stats_amount", "dispute_cases")
