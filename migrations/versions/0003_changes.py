"""changes table: the change log behind history, point-in-time reads, restore and watch

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The sequence number of a change: the writing transaction's id times 2^20 plus the row's index
# in that transaction, so every row a reader cannot see yet has a number at or above the reader's
# horizon (docs/history.md). A transaction that got its id before the key's previous writer did
# would number this version below the previous one: it fails with a serialization failure and
# the service retries it in a new transaction, whose id is newer. The check runs in a VOLATILE
# plpgsql function so it takes a fresh snapshot, which sees the previous writer's commit that the
# statement waited for.
CHANGE_SEQ = """
CREATE FUNCTION persistd_change_seq(ns text, d text, e text, k text, item bigint)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  s bigint := pg_current_xact_id()::text::bigint * 1048576 + item;
BEGIN
  IF item < 0 OR item >= 1048576 THEN
    RAISE EXCEPTION 'at most 1048576 changes per transaction' USING ERRCODE = '54000';
  END IF;
  IF EXISTS (
    SELECT 1 FROM changes
    WHERE namespace = ns AND domain = d AND entity = e AND key = k AND seq > s
  ) THEN
    RAISE EXCEPTION 'a newer transaction wrote this key first' USING ERRCODE = '40001';
  END IF;
  RETURN s;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("namespace", sa.Text(collation="C"), nullable=False),
        sa.Column("domain", sa.Text(collation="C"), nullable=False),
        sa.Column("entity", sa.Text(collation="C"), nullable=False),
        sa.Column("key", sa.Text(collation="C"), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.Text(), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("token_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("op IN ('put', 'delete')", name="changes_op_check"),
        sa.PrimaryKeyConstraint("seq", name="changes_pkey"),
    )
    op.create_index("changes_namespace_seq", "changes", ["namespace", "seq"])
    op.create_index(
        "changes_record_seq", "changes", ["namespace", "domain", "entity", "key", "seq"]
    )
    op.create_table(
        "history_horizon",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("pruned_before", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="history_horizon_one_row"),
        sa.PrimaryKeyConstraint("id", name="history_horizon_pkey"),
    )
    op.execute(CHANGE_SEQ)


def downgrade() -> None:
    op.execute("DROP FUNCTION persistd_change_seq(text, text, text, text, bigint)")
    op.drop_table("history_horizon")
    op.drop_index("changes_record_seq", table_name="changes")
    op.drop_index("changes_namespace_seq", table_name="changes")
    op.drop_table("changes")
