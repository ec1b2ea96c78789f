"""mask the password in stored subjects

Before this revision a Subject without ':' (the address form: `+33…@gw` with Subject
`FGB45L`) was stored in clear in job.subject. Every stored Subject is masked again with
today's rule (idempotent: a masked Subject stays as it is). Outbox bodies rendered before
are left as they are: they are sent or dead, and retention deletes them.

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-18
"""
from alembic import op
import sqlalchemy as sa

from mailgw.subject_parser import masked_subject


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    conn = op.get_bind()
    job = sa.table('job', sa.column('id', sa.Integer), sa.column('subject', sa.Text))
    after = 0
    while True:
        rows = conn.execute(
            sa.select(job.c.id, job.c.subject)
            .where(job.c.id > after, job.c.subject.is_not(None))
            .order_by(job.c.id).limit(BATCH)).all()
        if not rows:
            break
        changed = [{'row_id': row_id, 'masked': masked_subject(subject)}
                   for row_id, subject in rows if masked_subject(subject) != subject]
        if changed:
            conn.execute(job.update().where(job.c.id == sa.bindparam('row_id'))
                         .values(subject=sa.bindparam('masked')), changed)
        after = rows[-1][0]


def downgrade() -> None:
    pass  # the clear passwords are gone, as intended
