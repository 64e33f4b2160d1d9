"""Store layer: the SQL text of every statement; one statement per operation."""

_WHERE = "namespace = $1 AND domain = $2 AND entity = $3"
_PK = f"{_WHERE} AND key = $4"

_INTO = "INTO records AS r (namespace, domain, entity, key, value, version)"
_ONE_ROW = "VALUES ($1, $2, $3, $4, $5::jsonb, 1)"
# A write to an existing key replaces the document and counts one more version.
_BUMP = (
    "ON CONFLICT (namespace, domain, entity, key) DO UPDATE "
    "SET value = EXCLUDED.value, version = r.version + 1, updated_at = now()"
)
_KEEP = "ON CONFLICT (namespace, domain, entity, key) DO NOTHING"

GET = f"SELECT value, version, updated_at FROM records WHERE {_PK}"
HEAD = f"SELECT version, updated_at FROM records WHERE {_PK}"
UPSERT = f"INSERT {_INTO} {_ONE_ROW} {_BUMP} RETURNING version, updated_at"
INSERT = f"INSERT {_INTO} {_ONE_ROW} {_KEEP} RETURNING version, updated_at"
UPDATE_IF = f"""
UPDATE records SET value = $5::jsonb, version = version + 1, updated_at = now()
WHERE {_PK} AND ($6::bigint = -1 OR version = $6::bigint)
RETURNING version, updated_at
"""
# The outer SELECT sees the snapshot before the DELETE, which tells "absent" from "mismatch".
DELETE = f"""
WITH d AS (
  DELETE FROM records WHERE {_PK} AND ($5::bigint = -1 OR version = $5::bigint) RETURNING version
)
SELECT (SELECT version FROM d) AS deleted, (SELECT version FROM records WHERE {_PK}) AS current
"""
COUNT = f"SELECT count(*) FROM records WHERE {_WHERE}"
KEYS_FIRST = f"SELECT key FROM records WHERE {_WHERE} ORDER BY key LIMIT $4"
KEYS_AFTER = f"SELECT key FROM records WHERE {_WHERE} AND key > $4 ORDER BY key LIMIT $5"
_ITEM = "key, value, version, updated_at"
ITEMS_FIRST = f"SELECT {_ITEM} FROM records WHERE {_WHERE} ORDER BY key LIMIT $4"
ITEMS_AFTER = f"SELECT {_ITEM} FROM records WHERE {_WHERE} AND key > $4 ORDER BY key LIMIT $5"
NEWEST = f"""
SELECT * FROM (
  SELECT {_ITEM} FROM records WHERE {_WHERE} ORDER BY updated_at DESC, key DESC LIMIT $4
) newest ORDER BY updated_at, key
"""
BATCH_GET = f"SELECT {_ITEM} FROM records WHERE {_WHERE} AND key = ANY($4::text[])"
# Batch items are unpacked from the request body by PostgreSQL, so numbers are stored exactly.
_BATCH_ROWS = (
    "SELECT $1, $2, $3, i->>'key', i->'value', 1 "
    "FROM jsonb_array_elements($4::jsonb -> 'items') AS i"
)
BATCH_UPSERT = f"INSERT {_INTO} {_BATCH_ROWS} {_BUMP} RETURNING key, version"
# Import: an identical document is left alone, so importing twice changes nothing.
BATCH_UPSERT_CHANGED = (
    f"INSERT {_INTO} {_BATCH_ROWS} {_BUMP} "
    "WHERE r.value IS DISTINCT FROM EXCLUDED.value RETURNING key, version"
)
BATCH_INSERT = f"INSERT {_INTO} {_BATCH_ROWS} {_KEEP} RETURNING key, version"
NAMESPACES = "SELECT namespace, count(*) FROM records GROUP BY 1 ORDER BY 1"
DOMAINS = "SELECT domain, count(*) FROM records WHERE namespace = $1 GROUP BY 1 ORDER BY 1"
ENTITIES = (
    "SELECT entity, count(*) FROM records WHERE namespace = $1 AND domain = $2 "
    "GROUP BY 1 ORDER BY 1"
)
REVISIONS = "SELECT version_num FROM alembic_version"
# sync_state is NULL for a role without pg_read_all_stats (pg_monitor): "cannot tell", not 0.
REPLICATION = """
SELECT current_setting('synchronous_standby_names'), current_setting('synchronous_commit'),
  (SELECT CASE WHEN count(*) = count(sync_state)
               THEN count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')) END
   FROM pg_stat_replication)
"""
TOKEN = "SELECT secret_sha256, scopes, namespace FROM tokens WHERE id = $1 AND revoked_at IS NULL"
TOKEN_CREATE = (
    "INSERT INTO tokens (name, secret_sha256, scopes, namespace) VALUES ($1, $2, $3, $4) "
    "RETURNING id"
)
TOKEN_LIST = "SELECT id, name, scopes, namespace, created_at, revoked_at FROM tokens ORDER BY id"
TOKEN_REVOKE = "UPDATE tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL"
