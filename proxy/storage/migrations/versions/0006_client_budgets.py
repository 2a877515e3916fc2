"""Client budgets: a USD budget per day or month, a model allowlist and an expiry date on each client key

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Plain ADD COLUMN and DROP COLUMN, as in 0003 (every column nullable: existing keys keep no budget).
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COLUMNS = (("budget_usd", sa.Double()), ("budget_period", sa.String(length=5)), ("models", sa.JSON()),
            ("expires_at", sa.DateTime()))


def upgrade():
    for name, kind in _COLUMNS:
        op.add_column("api_clients", sa.Column(name, kind, nullable=True))


def downgrade():
    for name, _ in reversed(_COLUMNS):
        op.drop_column("api_clients", name)
