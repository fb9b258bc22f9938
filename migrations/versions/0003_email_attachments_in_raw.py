"""email: attachments are read from the raw message (mime_part); no second copy, no sha256

0001 (made again from the models) creates email_attachments with ``mime_part`` and without
``sha256``; this brings a database made before that to the same shape. Rows already stored keep their
``content`` and are served from it (``attachments.attachment_content``). On a database made from the
new 0001 there is nothing to do.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 06:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("email_attachments")}
    if "mime_part" in columns and "sha256" not in columns:
        return
    with op.batch_alter_table("email_attachments", schema=None) as batch_op:
        if "mime_part" not in columns:
            batch_op.add_column(sa.Column("mime_part", sa.String(length=255), nullable=True))
        if "sha256" in columns:
            batch_op.drop_column("sha256")


def downgrade():
    pass  # 0001 holds the new shape: going back to 0002 changes nothing
