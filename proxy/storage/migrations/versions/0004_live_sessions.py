"""Live sessions: what one WebSocket session carried (turns, messages, media bytes, its close code), beside
its exchange

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Plain ADD COLUMN and DROP COLUMN, as in 0003.
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COUNTS = ("turns", "client_messages", "server_messages", "media_in_bytes", "media_out_bytes", "close_code")


def upgrade():
    for name in _COUNTS:
        op.add_column("exchanges", sa.Column(name, sa.Integer(), nullable=True))


def downgrade():
    for name in reversed(_COUNTS):
        op.drop_column("exchanges", name)
