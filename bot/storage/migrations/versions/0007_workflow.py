"""Workflow: case version, assignee, department, state clock and pause; event visibility; case merges.

Revision ID: 0007_workflow
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_workflow"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("assignee_member_id", sa.String(64)))
        batch.add_column(sa.Column("assignee_committee_id", sa.String(64)))
        batch.add_column(sa.Column("department", sa.String(100)))
        batch.add_column(sa.Column("state_since", sa.DateTime()))
        batch.add_column(sa.Column("waiting_since", sa.DateTime()))
    op.create_index("ix_cases_assignee_member_id", "cases", ["assignee_member_id"])
    op.create_index("ix_cases_assignee_committee_id", "cases", ["assignee_committee_id"])
    with op.batch_alter_table("case_events") as batch:
        # Events written before this revision were all shown to residents.
        batch.add_column(sa.Column("visibility", sa.String(10), nullable=False, server_default="public"))
        batch.add_column(sa.Column("details", sa.JSON()))
    op.create_table(
        "case_merges",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source_case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("target_case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("submission_ids", sa.JSON(), nullable=False),
        sa.Column("source_status", sa.String(20), nullable=False),
        sa.Column("supporters", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("undone_at", sa.DateTime()),
        sa.Column("undone_by", sa.String(100)),
    )
    op.create_index("ix_case_merges_source_case_id", "case_merges", ["source_case_id"])
    op.create_index("ix_case_merges_target_case_id", "case_merges", ["target_case_id"])


def downgrade() -> None:
    op.drop_table("case_merges")
    with op.batch_alter_table("case_events") as batch:
        batch.drop_column("details")
        batch.drop_column("visibility")
    op.drop_index("ix_cases_assignee_committee_id", table_name="cases")
    op.drop_index("ix_cases_assignee_member_id", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        for name in ("waiting_since", "state_since", "department", "assignee_committee_id",
                     "assignee_member_id", "version"):
            batch.drop_column(name)
