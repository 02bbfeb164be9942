"""case text fingerprints, to find the same case imported twice

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

from kb.fingerprints import text_fingerprint

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade() -> None:
    op.add_column("dispute_cases", sa.Column("fingerprint", sa.String(32), nullable=True))
    op.create_index("ix_dispute_cases_fingerprint", "dispute_cases", ["fingerprint"])
    cases = sa.table("dispute_cases", sa.column("id", sa.Integer), sa.column("facts", sa.Text),
                     sa.column("fingerprint", sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(cases.c.id, cases.c.facts)).all()
    for start in range(0, len(rows), BATCH):
        conn.execute(cases.update().where(cases.c.id == sa.bindparam("case_id")).values(
            fingerprint=sa.bindparam("digest")),
            [{"case_id": i, "digest": text_fingerprint(facts)} for i, facts in rows[start:start + BATCH]])


def downgrade() -> None:
    op.drop_index("ix_dispute_cases_fingerprint", "dispute_cases")
    op.drop_column("dispute_cases", "fingerprint")
