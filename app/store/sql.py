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
TOKEN = "SELECT secret_sha256, scopes, namespace FROM tokens WHERE id = $1 AND revoked_at IS NULL"
TOKEN_CREATE = (
    "INSERT INTO tokens (name, secret_sha256, scopes, namespace) VALUES ($1, $2, $3, $4) "
    "RETURNING id"
)
TOKEN_LIST = "SELECT id, name, scopes, namespace, created_at, revoked_at FROM tokens ORDER BY id"
TOKEN_REVOKE = "UPDATE tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL"

# ---- leases ----
# Expiry is judged by PostgreSQL's clock (clock_timestamp(): the time the row is looked at, not
# the start of the transaction), so every persistd instance agrees on it.
_LEASE = "namespace = $1 AND name = $2"
_LIVE = "holder IS NOT NULL AND expires_at > clock_timestamp()"
_EXPIRY = "clock_timestamp() + {ttl} * interval '1 millisecond'"
# A free, expired or own lease is taken by bumping the token of the row that is always kept,
# so a token is never issued twice for a name, released or not.
LEASE_ACQUIRE = f"""
INSERT INTO leases AS l (namespace, name, holder, token, ttl_ms, expires_at, acquired_at)
VALUES ($1, $2, $3, 1, $4::integer, {_EXPIRY.format(ttl="$4::integer")}, clock_timestamp())
ON CONFLICT (namespace, name) DO UPDATE
SET holder = EXCLUDED.holder, token = l.token + 1, ttl_ms = EXCLUDED.ttl_ms,
    expires_at = {_EXPIRY.format(ttl="EXCLUDED.ttl_ms")}, acquired_at = clock_timestamp()
WHERE l.holder IS NULL OR l.expires_at <= clock_timestamp() OR l.holder = EXCLUDED.holder
RETURNING holder, token, ttl_ms, expires_at
"""
LEASE_RENEW = f"""
UPDATE leases SET ttl_ms = coalesce($4::integer, ttl_ms),
    expires_at = {_EXPIRY.format(ttl="coalesce($4::integer, ttl_ms)")}
WHERE {_LEASE} AND token = $3 AND {_LIVE}
RETURNING holder, token, ttl_ms, expires_at
"""
LEASE_RELEASE = f"""
UPDATE leases SET holder = NULL, expires_at = clock_timestamp()
WHERE {_LEASE} AND token = $3 AND {_LIVE}
RETURNING holder, token, ttl_ms, expires_at
"""
LEASE_GET = f"""
SELECT holder, token, ttl_ms, expires_at, {_LIVE} AS held,
       greatest(0, ceil(extract(epoch FROM expires_at - clock_timestamp()) * 1000))::bigint
FROM leases WHERE {_LEASE}
"""
LEASES_HELD = f"SELECT count(*) FROM leases WHERE {_LIVE}"


# ---- fenced writes ----
# A fenced write runs only while the lease `$n` (name) of the record's namespace is live with
# exactly token `$n+1`. FOR SHARE holds the lease row until the write commits: an acquisition
# (which updates that row) waits for it, so no write under token t commits after t+1 was issued.
def _held(n: int) -> str:
    return (
        "SELECT 1 FROM leases "
        f"WHERE namespace = $1 AND name = ${n} AND token = ${n + 1} AND {_LIVE} FOR SHARE"
    )


def _fence(n: int) -> str:
    return f"fence AS MATERIALIZED ({_held(n)})"


_FENCE_HELD = "EXISTS (SELECT 1 FROM fence)"  # the guard each fenced write's rows must pass


def _fenced(n: int, write: str, out: str) -> str:
    """`write` as CTE `w` under the fence; `out` selects its result and `held` from w."""
    return f"WITH {_fence(n)}, w AS ({write}) SELECT {_FENCE_HELD} AS held, {out}"


_ONE_ROW_FENCED = f"SELECT $1, $2, $3, $4, $5::jsonb, 1 WHERE {_FENCE_HELD}"
_ONE = "(SELECT version FROM w), (SELECT updated_at FROM w)"
# An upsert always returns its row, so none means "fenced": the guard alone, no CTE (the hot case).
UPSERT_FENCED = (
    f"INSERT {_INTO} SELECT $1, $2, $3, $4, $5::jsonb, 1 WHERE EXISTS ({_held(6)}) "
    f"{_BUMP} RETURNING version, updated_at"
)
INSERT_FENCED = _fenced(
    6, f"INSERT {_INTO} {_ONE_ROW_FENCED} {_KEEP} RETURNING version, updated_at", _ONE
)
UPDATE_IF_FENCED = _fenced(
    7,
    "UPDATE records SET value = $5::jsonb, version = version + 1, updated_at = now() "
    f"WHERE {_PK} AND ($6::bigint = -1 OR version = $6::bigint) AND {_FENCE_HELD} "
    "RETURNING version, updated_at",
    _ONE,
)
DELETE_FENCED = _fenced(
    6,
    f"DELETE FROM records WHERE {_PK} AND ($5::bigint = -1 OR version = $5::bigint) "
    f"AND {_FENCE_HELD} RETURNING version",
    f"(SELECT version FROM w), (SELECT version FROM records WHERE {_PK})",
)
# One row per written key, or one row of NULLs when nothing was written (refused or all kept).
_BATCH_ROWS_FENCED = f"{_BATCH_ROWS} WHERE {_FENCE_HELD}"
_BATCH_OUT = "w.key, w.version FROM (VALUES (1)) AS one LEFT JOIN w ON true"
BATCH_UPSERT_FENCED = _fenced(
    5, f"INSERT {_INTO} {_BATCH_ROWS_FENCED} {_BUMP} RETURNING key, version", _BATCH_OUT
)
BATCH_INSERT_FENCED = _fenced(
    5, f"INSERT {_INTO} {_BATCH_ROWS_FENCED} {_KEEP} RETURNING key, version", _BATCH_OUT
)
