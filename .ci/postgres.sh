#!/usr/bin/env bash
# Installs and starts a throwaway PostgreSQL from Debian's packages for the scale-out tests.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDATA=/tmp/stratopt-pg
if [ ! -d "$PGDATA" ]; then
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA"
  su postgres -c "$PGBIN/initdb -D $PGDATA -A trust -U postgres" >/dev/null
fi
su postgres -c "$PGBIN/pg_ctl -D $PGDATA -o '-p 55432 -k /tmp' -l $PGDATA/log status" >/dev/null 2>&1 || \
  su postgres -c "$PGBIN/pg_ctl -D $PGDATA -o '-p 55432 -k /tmp' -l $PGDATA/log -w start" >/dev/null
psql -h 127.0.0.1 -p 55432 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='stratopt_test'" | grep -q 1 || \
  psql -h 127.0.0.1 -p 55432 -U postgres -c "CREATE DATABASE stratopt_test" >/dev/null
echo "STRATOPT_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:55432/stratopt_test" > /tmp/stratopt-pg.env
echo "postgres ready on 55432"
