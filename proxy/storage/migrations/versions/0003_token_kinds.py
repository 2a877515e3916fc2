"""Token kinds: a request's cached, thoughts and tool-use prompt tokens, its service tier, and whether it
is a batch's usage

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Plain ADD COLUMN and DROP COLUMN (SQLite has both since 3.35): no table is copied, so the rows that
refer to request_log stay as they are, and the columns land where create_all puts them (last).
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COUNTS = ("cached_tokens", "thoughts_tokens", "tool_use_prompt_tokens")


def upgrade():
    for name in _COUNTS:
        op.add_column("request_log", sa.Column(name, sa.Integer(), nullable=True))
    op.add_column("request_log", sa.Column("service_tier", sa.String(length=20), nullable=True))
    # The server default gives the rows already there False, on PostgreSQL as on SQLite.
    op.add_column("request_log", sa.Column("batch", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    for name in ("batch", "service_tier", *reversed(_COUNTS)):
        op.drop_column("request_log", name)
