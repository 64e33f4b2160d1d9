#!/bin/sh
# The password comes from the environment at start; no file in the image holds it.
set -eu
umask 077
printf '"persistd" "%s"\n' "$POSTGRES_PASSWORD" > /tmp/userlist.txt
sed "s/@DATABASE_HOST@/${DATABASE_HOST}/" /etc/pgbouncer/pgbouncer.ini > /tmp/pgbouncer.ini
exec pgbouncer /tmp/pgbouncer.ini
