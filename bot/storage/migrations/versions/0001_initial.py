"""Initial schema: cases, submissions, contacts, case events, handoffs, case number counters.

Revision ID: 0001_initial
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(32)),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("topic", sa.String(50)),
        sa.Column("topic_confidence", sa.Float()),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("place", sa.String(300)),
        sa.Column("district", sa.String(100)),
        sa.Column("street", sa.String(100)),
        sa.Column("community", sa.String(100)),
        sa.Column("jurisdiction", sa.String(100)),
        sa.Column("campaign", sa.String(64)),
        sa.Column("supporter_count", sa.Integer(), nullable=False),
        sa.Column("merged_into_id", sa.Integer(), sa.ForeignKey("cases.id")),
        sa.Column("due_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_cases_number", "cases", ["number"], unique=True)
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_index("ix_cases_topic", "cases", ["topic"])
    op.create_index("ix_cases_jurisdiction", "cases", ["jurisdiction"])
    op.create_index("ix_cases_campaign", "cases", ["campaign"])
    op.create_index("ix_cases_created_at", "cases", ["created_at"])

    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(64)),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("title", sa.String(200)),
        sa.Column("place", sa.String(300)),
        sa.Column("since_when", sa.String(200)),
        sa.Column("scope", sa.String(300)),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("campaign", sa.String(64)),
        sa.Column("media", sa.JSON()),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("external_id", sa.String(128), unique=True),
        sa.Column("label", sa.String(100)),
        sa.Column("dedup_decision", sa.String(20)),
        sa.Column("candidate_case_id", sa.Integer(), sa.ForeignKey("cases.id")),
        sa.Column("dedup_score", sa.Float()),
        sa.Column("embedding", sa.LargeBinary()),
        sa.Column("embedding_model", sa.String(100)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_submissions_case_id", "submissions", ["case_id"])
    op.create_index("ix_submissions_sender", "submissions", ["sender"])
    op.create_index("ix_submissions_created_at", "submissions", ["created_at"])
    op.create_index("ix_submissions_sender_created", "submissions", ["sender", "created_at"])

    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("submission_id", sa.Integer(), sa.ForeignKey("submissions.id"), nullable=False,
                  unique=True),
        sa.Column("phone", sa.String(32)),
        sa.Column("name", sa.String(64)),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )

    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20)),
        sa.Column("note", sa.Text()),
        sa.Column("actor", sa.String(100)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])

    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(64)),
        sa.Column("reason", sa.String(30), nullable=False),
        sa.Column("text", sa.Text()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_handoffs_sender", "handoffs", ["sender"])

    op.create_table(
        "case_counters",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    for table in ("case_counters", "handoffs", "case_events", "contacts", "submissions", "cases"):
        op.drop_table(table)
