"""web_login, web_invite, web_session: the web space's passwords, invitations and sessions

Revision ID: 0018_web
Revises: 0016_tokens
Create Date: 2026-12-09
"""
from alembic import op
import sqlalchemy as sa


revision = '0018_web'
down_revision = '0016_tokens'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'web_login',
        sa.Column('account_id', Id, nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=True),
        sa.Column('totp_secret', sa.String(length=64), nullable=True),
        sa.Column('totp_enabled', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('totp_last_step', sa.BigInteger(), nullable=True),
        sa.Column('recovery_codes', sa.Text(), nullable=True),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE',
                                name=op.f('fk_web_login_account_id_account')),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_web_login')))
    op.create_table(
        'web_invite',
        sa.Column('id', Id, nullable=False),
        sa.Column('account_id', Id, nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE',
                                name=op.f('fk_web_invite_account_id_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_web_invite')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_web_invite_token_hash')))
    op.create_table(
        'web_session',
        sa.Column('id', Id, nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('account_id', Id, nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('pending_totp', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE',
                                name=op.f('fk_web_session_account_id_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_web_session')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_web_session_token_hash')))
    op.create_index(op.f('ix_web_session_account_id'), 'web_session', ['account_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_web_session_account_id'), table_name='web_session')
    op.drop_table('web_session')
    op.drop_table('web_invite')
    op.drop_table('web_login')
