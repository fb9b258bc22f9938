"""email: store raw message bytes and attachment contents out of line, uncompressed (PostgreSQL)

Mail is mostly base64 and already-compressed or random files: compressing the raw bytes and the
attachments costs the database CPU (pglz: ~7 ms per 300 KB message; lz4 less) for little or no gain.
STORAGE EXTERNAL keeps them out of line without trying; values already stored keep their form.
Other databases have no such setting: nothing to do.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 03:50:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

COLUMNS = (("email_inbound", "raw"), ("email_attachments", "content"))


def _alter(storage: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE {storage}")


def upgrade():
    _alter("EXTERNAL")


def downgrade():
    _alter("EXTENDED")
