"""Schema layer: SQLAlchemy table metadata, the one schema source for Alembic."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

# Keys sort in byte order ("C" collation), which makes list pagination stable and index-backed.
records = Table(
    "records",
    metadata,
    Column("namespace", Text(collation="C"), nullable=False),
    Column("domain", Text(collation="C"), nullable=False),
    Column("entity", Text(collation="C"), nullable=False),
    Column("key", Text(collation="C"), nullable=False),
    Column("value", JSONB, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("namespace", "domain", "entity", "key", name="records_pkey"),
)

# Bearer tokens: only the SHA-256 of the secret part is stored; the token is shown once.
tokens = Table(
    "tokens",
    metadata,
    Column("id", BigInteger, Identity(always=True), nullable=False),
    Column("name", Text, nullable=True),
    Column("secret_sha256", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("namespace", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("id", name="tokens_pkey"),
)

# One row per lease name, kept after release so the fencing token only ever grows: an
# acquisition sets token = token + 1 on the same row, so no token is issued twice.
leases = Table(
    "leases",
    metadata,
    Column("namespace", Text(collation="C"), nullable=False),
    Column("name", Text(collation="C"), nullable=False),
    Column("holder", Text, nullable=True),  # NULL once released
    Column("token", BigInteger, nullable=False),
    Column("ttl_ms", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("namespace", "name", name="leases_pkey"),
)

# The change log: one row per applied write (docs/history.md). `seq` derives from the writing
# transaction's id, so readers can tell which sequence numbers may still appear (the horizon).
changes = Table(
    "changes",
    metadata,
    Column("seq", BigInteger, nullable=False, autoincrement=False),
    Column("namespace", Text(collation="C"), nullable=False),
    Column("domain", Text(collation="C"), nullable=False),
    Column("entity", Text(collation="C"), nullable=False),
    Column("key", Text(collation="C"), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("op", Text, nullable=False),
    Column("value", JSONB, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("token_id", BigInteger, nullable=True),
    PrimaryKeyConstraint("seq", name="changes_pkey"),
    CheckConstraint("op IN ('put', 'delete')", name="changes_op_check"),
    Index("changes_namespace_seq", "namespace", "seq"),
    Index("changes_record_seq", "namespace", "domain", "entity", "key", "seq"),
)

# How far retention has pruned: times before `pruned_before` can no longer be read or restored.
history_horizon = Table(
    "history_horizon",
    metadata,
    Column("id", SmallInteger, nullable=False),
    Column("pruned_before", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("id", name="history_horizon_pkey"),
    CheckConstraint("id = 1", name="history_horizon_one_row"),
)
