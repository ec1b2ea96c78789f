"""account.require: what proves the sender beyond the password (password,
password+dmarc or password+auth)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Accounts made before this revision need their password only, as before.
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('require', sa.String(length=20), nullable=False,
                                      server_default='password'))


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('require')
