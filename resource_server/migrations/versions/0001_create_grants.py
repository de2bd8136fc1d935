"""Create the grants table.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than imported from ``resource_server.grants``: a migration must keep
describing the schema as it was when it was written, whatever the code says later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_server_grants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("org", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        # RFC 6749 §3.3 scope string: scope tokens sorted, joined by one space.
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.UniqueConstraint("org", "subject", "session_id", name="uq_resource_server_grants_key"),
    )
    # purge_expired() deletes by expiry.
    op.create_index("ix_resource_server_grants_expires_at", "resource_server_grants", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_resource_server_grants_expires_at", table_name="resource_server_grants")
    op.drop_table("resource_server_grants")
