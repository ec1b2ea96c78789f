"""account.cover, account.header_line: a cover page and a header line on the account's faxes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Accounts made before this revision fax without either, as every fax did. The defaults
    # are literals: SQLite then adds the columns in place (an expression would make Alembic
    # rebuild the table, which the foreign keys to account refuse once it has rows).
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cover', sa.Boolean(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('header_line', sa.Boolean(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('header_line')
        batch_op.drop_column('cover')
