"""account.quality: the account's fax quality (normal, high or best)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Accounts made before this revision fax at `high` (204×196), as every fax did.
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('quality', sa.String(length=10), nullable=False,
                                      server_default='high'))


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('quality')
