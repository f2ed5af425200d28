"""Console: accounts, audit log, login failures.

Revision ID: 0005_console
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_console"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(100)),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("member_id", sa.String(64)),
        sa.Column("committee_id", sa.String(64)),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime()),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer()),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("case_number", sa.String(32)),
        sa.Column("detail", sa.JSON()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_audit_log_case_number", "audit_log", ["case_number"])
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"])
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_login_failures_username_created", "login_failures", ["username", "created_at"])
    op.create_index("ix_login_failures_address_created", "login_failures", ["address", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_address_created", table_name="login_failures")
    op.drop_index("ix_login_failures_username_created", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_index("ix_audit_log_created_at", table_name="audit_log")
    op.drop_index("ix_audit_log_case_number", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("users")
