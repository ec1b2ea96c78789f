"""known_client: client addresses that delivered an account's right password (a proof while
guessers are slowed)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'

down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('known_client',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('address', sa.String(length=45), nullable=False),
    sa.Column('network', sa.String(length=49), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_known_client_account_id_account'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_known_client')),
    sa.UniqueConstraint('account_id', 'address', name=op.f('uq_known_client_account_id'))
    )
    with op.batch_alter_table('known_client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_known_client_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_known_client_network'), ['network'], unique=False)
        batch_op.create_index(batch_op.f('ix_known_client_seen_at'), ['seen_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('known_client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_known_client_seen_at'))
        batch_op.drop_index(batch_op.f('ix_known_client_network'))
        batch_op.drop_index(batch_op.f('ix_known_client_address'))

    op.drop_table('known_client')
