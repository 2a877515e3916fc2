"""Baseline: the tables as they stood when the project moved to Alembic (baseline.py)

A database made before then is brought up to these and stamped with this revision (runner.py).

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""
from alembic import op
from sqlalchemy.schema import CreateIndex, CreateTable, DropTable

from proxy.storage.migrations import baseline

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    # The same statements create_all would run, and printable by `flask db upgrade --sql`.
    for table in baseline.metadata.sorted_tables:
        op.execute(CreateTable(table))
        for index in sorted(table.indexes, key=lambda index: index.name):
            op.execute(CreateIndex(index))


def downgrade():
    for table in reversed(baseline.metadata.sorted_tables):
        op.execute(DropTable(table))
