"""Routing and delivery: committees, members, member areas, routes, outbox, digest state.

Revision ID: 0002_routing
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_routing"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "committees",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
    )
    op.create_table(
        "members",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("sector", sa.String(64)),
        sa.Column("committee_id", sa.String(64), sa.ForeignKey("committees.id")),
        sa.Column("is_duty_desk", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("channels", sa.JSON()),
    )
    op.create_table(
        "member_areas",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("member_id", sa.String(64), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("district", sa.String(100), nullable=False),
        sa.Column("street", sa.String(100)),
        sa.Column("community", sa.String(100)),
    )
    op.create_index("ix_member_areas_member_id", "member_areas", ["member_id"])
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("member_id", sa.String(64), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("committee_id", sa.String(64)),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("case_id", "member_id", name="uq_routes_case_member"),
    )
    op.create_index("ix_routes_case_id", "routes", ["case_id"])
    op.create_index("ix_routes_member_id", "routes", ["member_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id")),
        sa.Column("member_id", sa.String(64)),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("backend", sa.String(20), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime()),
    )
    op.create_index("ix_outbox_case_id", "outbox", ["case_id"])
    op.create_index("ix_outbox_member_id", "outbox", ["member_id"])
    op.create_index("ix_outbox_status", "outbox", ["status"])
    op.create_index("ix_outbox_next_attempt_at", "outbox", ["next_attempt_at"])
    op.create_table(
        "digest_state",
        sa.Column("member_id", sa.String(64), primary_key=True),
        sa.Column("last_sent_at", sa.DateTime()),
        sa.Column("supporters", sa.JSON()),
    )


def downgrade() -> None:
    for table in ("digest_state", "outbox", "routes", "member_areas", "members", "committees"):
        op.drop_table(table)
