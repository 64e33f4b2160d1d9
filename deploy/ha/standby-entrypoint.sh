#!/bin/bash
# db-standby: on an empty volume, copy the primary (pg_basebackup -R writes standby.signal and
# primary_conninfo), then run PostgreSQL through the image's own entrypoint.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  export PGPASSWORD="$REPLICATION_PASSWORD"
  gosu postgres pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -R -X stream -c fast
  unset PGPASSWORD
  # The cluster name is the application_name the primary sees in pg_stat_replication.
  echo "cluster_name = 'db_standby'" >> "$PGDATA/postgresql.auto.conf"
fi
exec docker-entrypoint.sh "$@"
