"""Place parts: the structured reading of a submission's place (district, street, community, roads,
building, unit, landmark, spot), stored beside the resident's own words.

Revision ID: 0008_place_parts
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_place_parts"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.add_column(sa.Column("place_parts", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("place_parts")
