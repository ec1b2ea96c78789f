"""api_token: an account's named, scoped API tokens, kept as a SHA-256 hash

Revision ID: 0016_tokens
Revises: 0015_received
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa


revision = '0016_tokens'
down_revision = '0015_received'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # A new table: nothing to fill in, no table rebuilt on SQLite.
    op.create_table(
        'api_token',
        sa.Column('id', Id, nullable=False),
        sa.Column('account_id', Id, nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('scopes', sa.String(length=200), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE',
                                name=op.f('fk_api_token_account_id_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
        sa.UniqueConstraint('account_id', 'name', name=op.f('uq_api_token_account_id')))
    op.create_index(op.f('ix_api_token_prefix'), 'api_token', ['prefix'])


def downgrade() -> None:
    op.drop_index(op.f('ix_api_token_prefix'), table_name='api_token')
    op.drop_table('api_token')
