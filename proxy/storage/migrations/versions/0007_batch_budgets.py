"""Batch budgets: a batch's estimated cost, counted against its client's budgets until its usage is counted

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

Plain ADD COLUMN and DROP COLUMN, as in 0003 (nullable: batches made before hold nothing, as before).
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = (("budget_micro", sa.BigInteger()), ("budget_scopes", sa.String(length=64)),
            ("budget_at", sa.DateTime()), ("budget_settled_at", sa.DateTime()))


def upgrade():
    for name, kind in _COLUMNS:
        op.add_column("owned_resources", sa.Column(name, kind, nullable=True))


def downgrade():
    for name, _ in reversed(_COLUMNS):
        op.drop_column("owned_resources", name)
