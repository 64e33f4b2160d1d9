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
# Many single-record reads at once (app/store/coalesce.py): each (namespace, domain, entity,
# key) row looked up by its primary key (LATERAL: one index probe per item, whatever the
# planner guesses of unnest), answered with its position in the arrays.
GET_MANY = """
SELECT i.n, r.value, r.version, r.updated_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
    AS i(namespace, domain, entity, key, n)
CROSS JOIN LATERAL (
  SELECT value, version, updated_at FROM records
  WHERE namespace = i.namespace AND domain = i.domain AND entity = i.entity AND key = i.key
) AS r
"""
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
# Rows are written in key order, so two batches sharing keys lock them in the same order and
# never deadlock each other.
_BATCH_ROWS = (
    "SELECT $1, $2, $3, i->>'key', i->'value', 1 "
    "FROM jsonb_array_elements($4::jsonb -> 'items') AS i ORDER BY (i->>'key') COLLATE \"C\""
)
BATCH_UPSERT = f"INSERT {_INTO} {_BATCH_ROWS} {_BUMP} RETURNING key, version"
# Import: an identical document is left alone, so importing twice changes nothing.
BATCH_UPSERT_CHANGED = (
    f"INSERT {_INTO} {_BATCH_ROWS} {_BUMP} "
    "WHERE r.value IS DISTINCT FROM EXCLUDED.value RETURNING key, version"
)
BATCH_INSERT = f"INSERT {_INTO} {_BATCH_ROWS} {_KEEP} RETURNING key, version"
# ---- the change log (docs/history.md) ----
# One change row per written row, appended in the write's own statement. `source` is the
# write's CTE (RETURNING key, value, version); `bump` turns a deleted version into the delete's.
_CHANGE_COLUMNS = "(seq, namespace, domain, entity, key, version, op, value, at, token_id)"


def log_clause(
    source: str,
    op: str,
    writer: str,
    *,
    domain: str = "$2",
    entity: str = "$3",
    value: str = "value",
    version: str = "version",
) -> str:
    """INSERT the change rows of `source`'s rows; seq from the transaction id and row index."""
    return (
        f"INSERT INTO changes {_CHANGE_COLUMNS} "
        f"SELECT persistd_change_seq($1, {domain}, {entity}, key, row_number() OVER () - 1), "
        f"$1, {domain}, {entity}, key, {version}, {op}, {value}, clock_timestamp(), {writer} "
        f"FROM {source}"
    )


def logged(write: str, returning: str, op: str, writer: str, final: str, **kw: str) -> str:
    """`write ... RETURNING returning` with its change rows appended, answering `final`."""
    log = log_clause("w", op, writer, **kw)
    return f"WITH w AS ({write} RETURNING {returning}), c AS ({log}) {final}"


_PUT = "key, value, version, updated_at"
UPSERT_LOGGED = logged(
    f"INSERT {_INTO} {_ONE_ROW} {_BUMP}", _PUT, "'put'", "$6", "SELECT version, updated_at FROM w"
)
INSERT_LOGGED = logged(
    f"INSERT {_INTO} {_ONE_ROW} {_KEEP}", _PUT, "'put'", "$6", "SELECT version, updated_at FROM w"
)
UPDATE_IF_LOGGED = logged(
    "UPDATE records SET value = $5::jsonb, version = version + 1, updated_at = now() "
    f"WHERE {_PK} AND ($6::bigint = -1 OR version = $6::bigint)",
    _PUT,
    "'put'",
    "$7",
    "SELECT version, updated_at FROM w",
)
DELETE_LOGGED = logged(
    f"DELETE FROM records WHERE {_PK} AND ($5::bigint = -1 OR version = $5::bigint)",
    "key, version",
    "'delete'",
    "$6",
    "SELECT (SELECT version FROM w) AS deleted, "
    f"(SELECT version FROM records WHERE {_PK}) AS current",
    value="NULL",
    version="version + 1",
)
_BATCH_FINAL = "SELECT key, version FROM w"
BATCH_UPSERT_LOGGED = logged(
    f"INSERT {_INTO} {_BATCH_ROWS} {_BUMP}", "key, value, version", "'put'", "$5", _BATCH_FINAL
)
BATCH_UPSERT_CHANGED_LOGGED = logged(
    f"INSERT {_INTO} {_BATCH_ROWS} {_BUMP} WHERE r.value IS DISTINCT FROM EXCLUDED.value",
    "key, value, version",
    "'put'",
    "$5",
    _BATCH_FINAL,
)
BATCH_INSERT_LOGGED = logged(
    f"INSERT {_INTO} {_BATCH_ROWS} {_KEEP}", "key, value, version", "'put'", "$5", _BATCH_FINAL
)

# The in-flight horizon: every change a reader cannot see yet has seq >= this. It is the oldest
# transaction id still running, times 2^20; transactions of other databases on the same server
# are left out when pg_stat_activity names them (they cannot write here).
HORIZON = """(
  SELECT coalesce(min(x::text::bigint), pg_snapshot_xmax(pg_current_snapshot())::text::bigint)
         * 1048576
  FROM pg_snapshot_xip(pg_current_snapshot()) AS x
  WHERE x::text::bigint % 4294967296 NOT IN (
    SELECT backend_xid::text::bigint FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
  )
)"""
HORIZON_NOW = f"SELECT {HORIZON}"
_CHANGE = "seq, namespace, domain, entity, key, version, op, value, at, token_id"
# A page of the catch-up feed: after $2, up to $6 (inclusive), below the horizon.
CHANGES = f"""
SELECT {_CHANGE} FROM changes
WHERE namespace = $1 AND seq > $2 AND seq <= $6 AND seq < {HORIZON}
  AND ($3::text IS NULL OR domain = $3) AND ($4::text IS NULL OR entity = $4)
ORDER BY seq LIMIT $5
"""
# The same across namespaces: the listed ones ($1), or every one when $1 is null.
CHANGES_ACROSS = f"""
SELECT {_CHANGE} FROM changes
WHERE ($1::text[] IS NULL OR namespace = ANY($1)) AND seq > $2 AND seq <= $6 AND seq < {HORIZON}
  AND ($3::text IS NULL OR domain = $3) AND ($4::text IS NULL OR entity = $4)
ORDER BY seq LIMIT $5
"""
# The watch hub's tail: every namespace.
TAIL = f"SELECT {_CHANGE} FROM changes WHERE seq > $1 AND seq < {HORIZON} ORDER BY seq LIMIT $2"
_RECORD_CHANGES = f"FROM changes WHERE {_PK}"
HISTORY = f"""
SELECT seq, op, version, at, token_id, CASE WHEN $7 THEN value END
{_RECORD_CHANGES} AND seq < $5 ORDER BY seq DESC LIMIT $6
"""
VERSION = (
    f"SELECT op, value, version, at, token_id {_RECORD_CHANGES} AND version = $5 "
    "ORDER BY seq DESC LIMIT 1"
)
OLDEST_VERSION = f"SELECT min(version) {_RECORD_CHANGES}"
PRUNED_BEFORE = "SELECT pruned_before FROM history_horizon WHERE id = 1"
# An entity as it stood at $4: each key's last change at or before then, when it was a put.
_AT = f"""
SELECT key, value, version, at FROM (
  SELECT DISTINCT ON (key) key, op, value, version, at FROM changes
  WHERE {_WHERE} AND at <= $4 {{after}} ORDER BY key, seq DESC
) s WHERE op = 'put' ORDER BY key LIMIT {{limit}}
"""
AT_FIRST = _AT.format(after="", limit="$5")
AT_AFTER = _AT.format(after="AND key > $5", limit="$6")

_SCOPE = "($3::text IS NULL OR domain = $3) AND ($4::text IS NULL OR entity = $4)"
# What a restore to $2 changes: keys whose last change by then differs from the record now.
# A key with no change by then is deleted only when the log saw it created (later); records
# older than the log, and domains without history, are left alone.
_RESTORE_DIFF = f"""
target AS (
  SELECT DISTINCT ON (domain, entity, key) domain, entity, key, op, value FROM changes
  WHERE namespace = $1 AND at <= $2 AND {_SCOPE} ORDER BY domain, entity, key, seq DESC
),
cur AS (
  SELECT domain, entity, key, value FROM records WHERE namespace = $1 AND {_SCOPE} FOR UPDATE
),
diff AS (
  SELECT coalesce(t.domain, c.domain) AS domain, coalesce(t.entity, c.entity) AS entity,
         coalesce(t.key, c.key) AS key,
         CASE WHEN t.op = 'put' THEN 'put' ELSE 'delete' END AS op,
         CASE WHEN t.op = 'put' THEN t.value END AS value
  FROM target t FULL JOIN cur c
    ON t.domain = c.domain AND t.entity = c.entity AND t.key = c.key
  WHERE CASE WHEN t.op = 'put' THEN c.key IS NULL OR c.value IS DISTINCT FROM t.value
        ELSE c.key IS NOT NULL AND (t.key IS NOT NULL OR EXISTS (
          SELECT 1 FROM changes h WHERE h.namespace = $1 AND h.domain = c.domain
            AND h.entity = c.entity AND h.key = c.key AND h.version = 1 AND h.op = 'put'))
        END
)"""
RESTORE_PLAN = f"""
WITH {_RESTORE_DIFF}
SELECT domain, entity, key, op, value FROM diff ORDER BY domain, entity, key
"""
RESTORE = f"""
WITH {_RESTORE_DIFF},
p AS (
  INSERT {_INTO} SELECT $1, domain, entity, key, value, 1 FROM diff WHERE op = 'put' {_BUMP}
  RETURNING domain, entity, key, value, version
),
x AS (
  DELETE FROM records r USING diff
  WHERE diff.op = 'delete' AND r.namespace = $1 AND r.domain = diff.domain
    AND r.entity = diff.entity AND r.key = diff.key
  RETURNING r.domain, r.entity, r.key, r.version + 1 AS version
),
l AS (
  SELECT domain, entity, key, version, 'put' AS op, value FROM p
  UNION ALL SELECT domain, entity, key, version, 'delete', NULL::jsonb FROM x
),
c AS ({log_clause("l", "op", "$5", domain="domain", entity="entity")})
SELECT op, count(*) FROM l GROUP BY op
"""
# Retention: delete, in one small batch, changes older than $1 that a later change of the same
# key before $1 supersedes, and deletes older than $1 that end a key's history before then.
# The last change before the horizon stays: it is the record's state at the horizon.
PRUNE_BATCH = """
WITH old AS (
  SELECT c.seq FROM changes c
  WHERE c.at < $1
    AND c.seq < coalesce((SELECT seq FROM changes WHERE at >= $1 ORDER BY seq LIMIT 1), $3)
    AND (
    c.op = 'delete' OR EXISTS (
      SELECT 1 FROM changes n WHERE n.namespace = c.namespace AND n.domain = c.domain
        AND n.entity = c.entity AND n.key = c.key AND n.seq > c.seq AND n.at < $1))
  ORDER BY c.seq LIMIT $2
)
DELETE FROM changes WHERE seq IN (SELECT seq FROM old)
"""
PRUNED_MARK = """
INSERT INTO history_horizon (id, pruned_before) VALUES (1, $1)
ON CONFLICT (id) DO UPDATE SET pruned_before = greatest(history_horizon.pruned_before, $1)
"""

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
# Many leases in one statement: each (namespace, name, token[, ttl]) row renewed when live with
# that token; the ones not returned are read back with LEASES_GET to say why.
LEASES_RENEW = f"""
UPDATE leases AS l SET ttl_ms = coalesce(r.ttl_ms, l.ttl_ms),
    expires_at = {_EXPIRY.format(ttl="coalesce(r.ttl_ms, l.ttl_ms)")}
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::integer[])
    AS r(namespace, name, token, ttl_ms)
WHERE l.namespace = r.namespace AND l.name = r.name AND l.token = r.token AND {_LIVE}
RETURNING l.namespace, l.name, l.holder, l.token, l.ttl_ms, l.expires_at
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
LEASES_GET = f"""
SELECT namespace, name, holder, token, ttl_ms, expires_at, {_LIVE} AS held
FROM leases WHERE (namespace, name) IN (SELECT * FROM unnest($1::text[], $2::text[]))
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
_BATCH_ROWS_FENCED = _BATCH_ROWS.replace(" ORDER BY", f" WHERE {_FENCE_HELD} ORDER BY")
_BATCH_OUT = "w.key, w.version FROM (VALUES (1)) AS one LEFT JOIN w ON true"
BATCH_UPSERT_FENCED = _fenced(
    5, f"INSERT {_INTO} {_BATCH_ROWS_FENCED} {_BUMP} RETURNING key, version", _BATCH_OUT
)
BATCH_INSERT_FENCED = _fenced(
    5, f"INSERT {_INTO} {_BATCH_ROWS_FENCED} {_KEEP} RETURNING key, version", _BATCH_OUT
)


# ---- fenced writes with their change rows (history on for the domain) ----
def _fenced_logged(n: int, write: str, returning: str, writer: str, out: str, **kw: str) -> str:
    """`write` (its rows guarded by the fence) with its change rows; `held` and `out` from w."""
    op = kw.pop("op", "'put'")
    statement = logged(write, returning, op, writer, f"SELECT {_FENCE_HELD} AS held, {out}", **kw)
    return f"WITH {_fence(n)}, " + statement.removeprefix("WITH ")


UPSERT_FENCED_LOGGED = _fenced_logged(
    7, f"INSERT {_INTO} {_ONE_ROW_FENCED} {_BUMP}", _PUT, "$6", _ONE
)
INSERT_FENCED_LOGGED = _fenced_logged(
    7, f"INSERT {_INTO} {_ONE_ROW_FENCED} {_KEEP}", _PUT, "$6", _ONE
)
UPDATE_IF_FENCED_LOGGED = _fenced_logged(
    8,
    "UPDATE records SET value = $5::jsonb, version = version + 1, updated_at = now() "
    f"WHERE {_PK} AND ($6::bigint = -1 OR version = $6::bigint) AND {_FENCE_HELD}",
    _PUT,
    "$7",
    _ONE,
)
DELETE_FENCED_LOGGED = _fenced_logged(
    7,
    f"DELETE FROM records WHERE {_PK} AND ($5::bigint = -1 OR version = $5::bigint) "
    f"AND {_FENCE_HELD}",
    "key, version",
    "$6",
    f"(SELECT version FROM w), (SELECT version FROM records WHERE {_PK})",
    op="'delete'",
    value="NULL",
    version="version + 1",
)
BATCH_UPSERT_FENCED_LOGGED = _fenced_logged(
    6, f"INSERT {_INTO} {_BATCH_ROWS_FENCED} {_BUMP}", "key, value, version", "$5", _BATCH_OUT
)
BATCH_INSERT_FENCED_LOGGED = _fenced_logged(
    6, f"INSERT {_INTO} {_BATCH_ROWS_FENCED} {_KEEP}", "key, value, version", "$5", _BATCH_OUT
)


# ---- coalesced writes ----
# Unconditional upserts that arrive together are written by one statement in one transaction
# (coalesce.py). Each item carries its own writer, fence (NULL: none) and whether its domain
# keeps history; a fenced item whose lease is not held is left out and answers NULL. Items are
# distinct addresses, written in address order so concurrent statements lock rows in one order.
_ITEMS = (
    "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], "
    "$7::text[], $8::bigint[], $9::bool[]) WITH ORDINALITY "
    "AS i(namespace, domain, entity, key, value, writer, fence, token, logs, n)"
)


def _same(a: str, b: str) -> str:
    """Rows `a` and `b` are at one address."""
    return " AND ".join(f"{a}.{c} = {b}.{c}" for c in ("namespace", "domain", "entity", "key"))


UPSERT_MANY = f"""
WITH i AS MATERIALIZED (SELECT * FROM {_ITEMS}),
ok AS MATERIALIZED (
  SELECT * FROM i WHERE i.fence IS NULL OR EXISTS (
    SELECT 1 FROM leases
    WHERE namespace = i.namespace AND name = i.fence AND token = i.token AND {_LIVE} FOR SHARE)
),
w AS (
  INSERT {_INTO}
  SELECT namespace, domain, entity, key, value::jsonb, 1 FROM ok
  ORDER BY namespace COLLATE "C", domain COLLATE "C", entity COLLATE "C", key COLLATE "C"
  {_BUMP} RETURNING namespace, domain, entity, key, value, version, updated_at
),
c AS (
  INSERT INTO changes {_CHANGE_COLUMNS}
  SELECT persistd_change_seq(w.namespace, w.domain, w.entity, w.key, row_number() OVER () - 1),
         w.namespace, w.domain, w.entity, w.key, w.version, 'put', w.value, clock_timestamp(),
         ok.writer
  FROM w JOIN ok ON {_same("w", "ok")} WHERE ok.logs
)
SELECT i.n, w.version, w.updated_at FROM i LEFT JOIN w ON {_same("w", "i")}
"""


# The conditional single-record writes by (operation, logged, fenced). Their parameters, in
# order: the address ($1-$4), the document (not for delete), the version condition (not for
# insert), the writer's token id when logged, the fence's lease name and token when fenced.
# Fenced statements answer `held` first, then what the unfenced ones answer.
WRITES = {
    ("insert", False, False): INSERT,
    ("insert", True, False): INSERT_LOGGED,
    ("insert", False, True): INSERT_FENCED,
    ("insert", True, True): INSERT_FENCED_LOGGED,
    ("update_if", False, False): UPDATE_IF,
    ("update_if", True, False): UPDATE_IF_LOGGED,
    ("update_if", False, True): UPDATE_IF_FENCED,
    ("update_if", True, True): UPDATE_IF_FENCED_LOGGED,
    ("delete", False, False): DELETE,
    ("delete", True, False): DELETE_LOGGED,
    ("delete", False, True): DELETE_FENCED,
    ("delete", True, True): DELETE_FENCED_LOGGED,
}
# The batch writes by (kind, logged, fenced), with the parameters of WRITES: the entity
# ($1-$3), the request body, the writer when logged, the fence when fenced. Unfenced, one row
# (key, version) per written key; fenced, `held` first, and one row of NULLs when none was.
BATCHES = {
    ("upsert", False, False): BATCH_UPSERT,
    ("upsert", True, False): BATCH_UPSERT_LOGGED,
    ("upsert", False, True): BATCH_UPSERT_FENCED,
    ("upsert", True, True): BATCH_UPSERT_FENCED_LOGGED,
    ("insert", False, False): BATCH_INSERT,
    ("insert", True, False): BATCH_INSERT_LOGGED,
    ("insert", False, True): BATCH_INSERT_FENCED,
    ("insert", True, True): BATCH_INSERT_FENCED_LOGGED,
    # Imports (identical documents left alone) are never fenced.
    ("upsert_changed", False, False): BATCH_UPSERT_CHANGED,
    ("upsert_changed", True, False): BATCH_UPSERT_CHANGED_LOGGED,
}
