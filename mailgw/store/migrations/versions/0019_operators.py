"""account.admin and account.disabled; admin_action, the operators' journal

Revision ID: 0019_operators
Revises: 0018_web
Create Date: 2026-12-10
"""
from alembic import op
import sqlalchemy as sa


revision = '0019_operators'
down_revision = '0018_web'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # Literal defaults: SQLite adds the columns in place (an expression would make Alembic
    # rebuild the table, which the foreign keys to account refuse once it has rows; 0013).
    with op.batch_alter_table('account') as batch:
        batch.add_column(sa.Column('admin', sa.Boolean(), server_default='0',
                                   nullable=False))
        batch.add_column(sa.Column('disabled', sa.Boolean(), server_default='0',
                                   nullable=False))
    op.create_table(
        'admin_action',
        sa.Column('id', Id, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor_id', Id, nullable=True),
        sa.Column('actor', sa.String(length=320), nullable=False),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('target', sa.String(length=400), nullable=False),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['actor_id'], ['account.id'], ondelete='SET NULL',
                                name=op.f('fk_admin_action_actor_id_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_action')))
    op.create_index('ix_admin_action_at', 'admin_action', ['at'])


def downgrade() -> None:
    op.drop_index('ix_admin_action_at', table_name='admin_action')
    op.drop_table('admin_action')
    with op.batch_alter_table('account') as batch:
        batch.drop_column('disabled')
        batch.drop_column('admin')
