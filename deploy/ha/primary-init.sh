#!/bin/bash
# First start of db-primary (docker-entrypoint-initdb.d): the replication role, access for it,
# and synchronous replication to whichever standby attaches ('*').
set -euo pipefail
psql -v ON_ERROR_STOP=1 -v pw="$REPLICATION_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
-- /readyz reports sync_state from pg_stat_replication, which a role sees with pg_monitor (the
-- image's POSTGRES_USER is a superuser anyway; keep this for a dedicated persistd role).
GRANT pg_monitor TO persistd;
-- Takes effect at the real start, after this script: a commit now would wait for a standby.
ALTER SYSTEM SET synchronous_standby_names = '*';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
