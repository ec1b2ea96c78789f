"""account.notice_mode, account.summary_from: an account's own notice setting (the web
space's Settings), over the gateway's [notify] on and summary_from

Revision ID: 0020_notices
Revises: 0019_operators
Create Date: 2026-12-10
"""
from alembic import op
import sqlalchemy as sa


revision = '0020_notices'
down_revision = '0019_operators'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: the gateway's setting, as before this revision.
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice_mode', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('summary_from', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('summary_from')
        batch_op.drop_column('notice_mode')
