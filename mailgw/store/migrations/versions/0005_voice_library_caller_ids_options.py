"""voice message library, verified caller IDs, call options

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('caller_id',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_caller_id_account_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_caller_id')),
    sa.UniqueConstraint('account_id', 'number', name=op.f('uq_caller_id_account_id'))
    )
    op.create_table('voice_message',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ref', sa.String(length=40), nullable=False),
    sa.Column('duration', sa.Float(), nullable=False, server_default='0'),
    sa.Column('audio', sa.LargeBinary(), nullable=False),
    sa.Column('source_name', sa.String(length=400), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False,
              server_default=sa.func.now()),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_voice_message_account_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_voice_message')),
    sa.UniqueConstraint('account_id', 'ref', name=op.f('uq_voice_message_account_id'))
    )
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('voice_options', sa.Text(), nullable=True))

    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('options', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('options')

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('voice_options')

    op.drop_table('voice_message')
    op.drop_table('caller_id')
