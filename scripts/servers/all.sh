#!/usr/bin/env bash
# All test servers: PostgreSQL 18 + pgvector, PgBouncer, moto (S3).
#
# Usage: scripts/servers/all.sh {start|stop|status|env}
#   start   start postgres, then pgbouncer (which needs it), then moto
#   stop    stop them in reverse order (each a no-op when not running)
#   status  status of each; exit 0 only if all three run
#   env     print the combined exports:  eval "$(scripts/servers/all.sh env)"
#
# Typical CI use:
#   scripts/servers/all.sh start
#   eval "$(scripts/servers/all.sh env)"
#   trap 'scripts/servers/all.sh stop' EXIT
# Ports: STRATA_PG_PORT (15432), STRATA_PGBOUNCER_PORT (16432),
# STRATA_S3_PORT (15900). See each script's header for details.

set -euo pipefail
D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case "${1:-}" in
  start)
    "$D/postgres.sh" start
    "$D/pgbouncer.sh" start
    "$D/moto.sh" start
    ;;
  stop)
    rc=0
    "$D/moto.sh" stop || rc=1
    "$D/pgbouncer.sh" stop || rc=1
    "$D/postgres.sh" stop || rc=1
    exit "$rc"
    ;;
  status)
    rc=0
    for s in postgres pgbouncer moto; do "$D/$s.sh" status || rc=3; done
    exit "$rc"
    ;;
  env)
    "$D/postgres.sh" env
    "$D/pgbouncer.sh" env
    "$D/moto.sh" env
    ;;
  *) echo "usage: $0 {start|stop|status|env}" >&2; exit 2 ;;
esac
