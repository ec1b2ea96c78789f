"""provider events for cloud drivers

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 19:25:53.059787
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('provider_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('driver', sa.String(length=40), nullable=False),
    sa.Column('provider_ref', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=60), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_event')),
    sa.UniqueConstraint('driver', 'provider_ref', 'status', name=op.f('uq_provider_event_driver'))
    )


def downgrade() -> None:
    op.drop_table('provider_event')
