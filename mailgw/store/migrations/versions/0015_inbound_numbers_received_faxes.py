"""inbound_number, received_fax: numbers mapped to accounts, received faxes already mailed

Revision ID: 0015_received
Revises: 0014
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa


revision = '0015_received'
down_revision = '0014'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'inbound_number',
        sa.Column('id', Id, nullable=False),
        sa.Column('number', sa.String(length=20), nullable=False),
        sa.Column('account_id', Id, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='CASCADE',
                                name=op.f('fk_inbound_number_account_id_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_number')),
        sa.UniqueConstraint('number', name=op.f('uq_inbound_number_number')))
    op.create_index(op.f('ix_inbound_number_account_id'), 'inbound_number', ['account_id'])
    op.create_table(
        'received_fax',
        sa.Column('id', Id, nullable=False),
        sa.Column('source', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('called', sa.String(length=40), nullable=False),
        sa.Column('caller', sa.String(length=40), nullable=False),
        sa.Column('csid', sa.String(length=40), nullable=False),
        sa.Column('pages', sa.Integer(), nullable=False),
        sa.Column('account_id', Id, nullable=True),
        sa.Column('rcpt_to', sa.String(length=320), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'], ondelete='SET NULL',
                                name=op.f('fk_received_fax_account_id_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_received_fax')),
        sa.UniqueConstraint('source', 'name', name=op.f('uq_received_fax_source')))


def downgrade() -> None:
    op.drop_table('received_fax')
    op.drop_index(op.f('ix_inbound_number_account_id'), table_name='inbound_number')
    op.drop_table('inbound_number')
