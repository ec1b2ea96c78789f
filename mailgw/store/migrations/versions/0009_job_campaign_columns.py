"""job.numbers_from_list (the numbers came from an attached list or a contact group) and
job.recipient_count (how many numbers)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs taken before this revision keep notices per number: false for them.
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('numbers_from_list', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('recipient_count', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('recipient_count')
        batch_op.drop_column('numbers_from_list')
