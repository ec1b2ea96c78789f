"""send window, credits per delivery, cancel requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('send_window', sa.String(length=100), nullable=True))

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credits_reserved', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))




def downgrade() -> None:

    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('cancel_requested')
        batch_op.drop_column('credits_reserved')

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('send_window')


