"""account.test_number: the account's own fax number, the only one a `test: yes` mail dials

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Accounts made before this revision have none: a `test: yes` mail is refused (89).
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('test_number', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('test_number')
