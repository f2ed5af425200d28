"""Channels: WeChat/WeCom message de-duplication, shared access tokens, campaigns.

Revision ID: 0003_channels
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_channels"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def _existing_tables() -> set:
    # The Rasa server may have created these tables already (bot.channels.models.ensure_tables).
    return set(sa.inspect(op.get_bind()).get_table_names())


def upgrade() -> None:
    existing = _existing_tables()
    if "channel_messages" not in existing:
        op.create_table(
            "channel_messages",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("channel", sa.String(16), nullable=False),
            sa.Column("msg_key", sa.String(128), nullable=False),
            sa.Column("recipient", sa.String(128), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("replies", sa.JSON()),
            sa.Column("delivered_via", sa.String(16)),
            sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
            sa.Column("last_error", sa.String(300)),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
            sa.UniqueConstraint("channel", "msg_key", name="uq_channel_messages_key"),
        )
        op.create_index("ix_channel_messages_status", "channel_messages", ["status"])
        op.create_index("ix_channel_messages_created_at", "channel_messages", ["created_at"])
    if "channel_tokens" not in existing:
        op.create_table(
            "channel_tokens",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("token", sa.String(512), nullable=False),
            sa.Column("expires_at", sa.DateTime(), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
        )
    if "campaigns" not in existing:
        op.create_table(
            "campaigns",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("scene", sa.String(64), nullable=False, unique=True),
            sa.Column("title", sa.String(200), nullable=False),
            sa.Column("question", sa.Text(), nullable=False),
            sa.Column("opens_at", sa.DateTime()),
            sa.Column("closes_at", sa.DateTime()),
            sa.Column("qr_ticket", sa.String(256)),
            sa.Column("qr_url", sa.String(512)),
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )


def downgrade() -> None:
    op.drop_table("campaigns")
    op.drop_table("channel_tokens")
    op.drop_index("ix_channel_messages_created_at", table_name="channel_messages")
    op.drop_index("ix_channel_messages_status", table_name="channel_messages")
    op.drop_table("channel_messages")
