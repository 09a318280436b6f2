"""audit: chain version 2, appended on PostgreSQL by one server-side function

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 17:10:00

Version 1 hashed each event's fields together with its sequence number and the previous hash.
Version 2 hashes the fields first (the content digest, computed by Concord) and then links
`seq|previous hash|content digest`, a step PostgreSQL can do itself: on PostgreSQL the
append is one call to concord_audit_append(), which locks the chain head, links and inserts
the events and moves the head, so the head's lock is held for one statement and the commit
instead of three round trips to the application. Events written before keep version 1 and
verify as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APPEND_PG = """
CREATE FUNCTION concord_audit_append(events jsonb) RETURNS bigint AS $$
DECLARE
    head_seq bigint;
    head_hash varchar(64);
    link varchar(64);
    e jsonb;
BEGIN
    SELECT seq, hash INTO head_seq, head_hash FROM audit_chain_head WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := repeat('0', 64);
        INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, head_seq, head_hash);
    END IF;
    FOR e IN
        SELECT value FROM jsonb_array_elements(events) WITH ORDINALITY AS t(value, n) ORDER BY n
    LOOP
        head_seq := head_seq + 1;
        link := encode(sha256(convert_to(
            head_seq::text || '|' || head_hash || '|' || (e->>'content'), 'UTF8'
        )), 'hex');
        INSERT INTO audit_event (
            seq, occurred_at, organization_id, actor_id, actor_role, channel, action,
            object_type, object_id, patient_id, outcome, detail, ip, prev_hash, hash,
            chain_version
        ) VALUES (
            head_seq, (e->>'occurred_at')::timestamptz, (e->>'organization_id')::uuid,
            (e->>'actor_id')::uuid, e->>'actor_role', e->>'channel', e->>'action',
            e->>'object_type', e->>'object_id', (e->>'patient_id')::uuid, e->>'outcome',
            e->'detail', e->>'ip', head_hash, link, 2
        );
        head_hash := link;
    END LOOP;
    UPDATE audit_chain_head SET seq = head_seq, hash = head_hash WHERE id = 1;
    RETURN head_seq;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.add_column(
        "audit_event",
        sa.Column("chain_version", sa.SmallInteger(), server_default="1", nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_PG)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS concord_audit_append(jsonb)")
    # Plain ALTER TABLE on both engines (SQLite 3.35+): a batch copy would lose the triggers.
    op.execute("ALTER TABLE audit_event DROP COLUMN chain_version")
