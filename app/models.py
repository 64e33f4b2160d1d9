"""Schema layer: SQLAlchemy table metadata, the one schema source for Alembic."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

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
