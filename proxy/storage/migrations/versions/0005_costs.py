"""Costs stored with each record: request_log's cost_usd and the price it used (source, rates as JSON); the
hourly rollups' billed token kinds, batch flag and summed cost

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Plain ADD COLUMN and DROP COLUMN, as in 0003. Rows already written keep cost_usd NULL: reports cost them at
read time. The rollups held no token kinds before, so the hours rolled up so far are forgotten and rolled up
again (from the raw rows, which reports read meanwhile).
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_KINDS = ("cached_tokens", "thoughts_tokens", "tool_use_prompt_tokens")
_ROLLUPS = ("rolled_hours", "hourly_rollups", "hourly_attempts", "hourly_histograms")


def _forget_rollups():
    for table in _ROLLUPS:
        op.execute(sa.text(f"DELETE FROM {table}"))


def upgrade():
    op.add_column("request_log", sa.Column("cost_usd", sa.Double(), nullable=True))
    op.add_column("request_log", sa.Column("price_source", sa.String(length=40), nullable=True))
    op.add_column("request_log", sa.Column("price_rates", sa.Text(), nullable=True))
    _forget_rollups()
    for name in _KINDS:
        op.add_column("hourly_rollups", sa.Column(name, sa.Integer(), server_default="0", nullable=False))
    op.add_column("hourly_rollups", sa.Column("batch", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("hourly_rollups", sa.Column("costed", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column("hourly_rollups", sa.Column("cost_usd", sa.Double(), server_default="0", nullable=False))


def downgrade():
    _forget_rollups()  # their hours are rolled up again without the kinds
    for name in ("cost_usd", "costed", "batch", *reversed(_KINDS)):
        op.drop_column("hourly_rollups", name)
    for name in ("price_rates", "price_source", "cost_usd"):
        op.drop_column("request_log", name)
