#!/usr/bin/env bash
# Qdrant test server: the official binary, built from source (no package
# registry ships one), on loopback with a temporary storage directory.
#
# Usage: scripts/servers/qdrant.sh {start|stop|status|env|available|build}
#   start      start qdrant on 127.0.0.1 (REST ${STRATA_QDRANT_PORT:-16333},
#              gRPC ${STRATA_QDRANT_GRPC_PORT:-16334}) with the API key
#              ${STRATA_QDRANT_API_KEY:-strata-test-key}, wait until /readyz
#              answers, then prove the key is enforced (a request without it
#              is refused, one with it lists collections). Idempotent. Exits
#              4 when there is no binary (it never builds one: see `build`).
#   stop       stop it and delete its storage (no-op when not running)
#   status     exit 0 if running, 3 if not
#   env        print exports: eval "$(scripts/servers/qdrant.sh env)"
#              (QDRANT_URL = the gRPC endpoint the plugin talks to,
#              QDRANT_REST_URL, QDRANT_API_KEY)
#   available  exit 0 if a binary is there, 4 if not, printing how to get one
#   build      build the binary from source into ~/.cache/strata/servers/qdrant
#              (20-30 min on 2 cores, once per machine; an interrupted build
#              resumes where it stopped) with
#              ../shared/qdrant/build-qdrant.sh, from bare git directories of
#              github.com/qdrant/qdrant and github.com/qdrant/tonic given as
#              QDRANT_GIT / TONIC_GIT (default: /work/.mirror/qdrant+qdrant/repo
#              and /work/.mirror/qdrant+tonic/repo when they exist).
#
# The binary: $QDRANT_BIN, else `qdrant` on PATH, else
# ~/.cache/strata/servers/qdrant/bin/qdrant. Building takes 20-30 minutes,
# so only `build` does it, never `start` (a test run must not turn into a
# half-hour compile, nor restart a build already running).
#
# An external server instead: set QDRANT_URL (+ QDRANT_API_KEY) and do not
# call `start`; the tests use whatever QDRANT_URL names.
# Files: .servers/qdrant/{qdrant.pid,qdrant.log,storage/,snapshots/}.

# shellcheck source=scripts/servers/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

Q_PORT=${STRATA_QDRANT_PORT:-16333}
Q_GRPC_PORT=${STRATA_QDRANT_GRPC_PORT:-16334}
Q_KEY=${STRATA_QDRANT_API_KEY:-strata-test-key}
Q_DIR=$STRATA_SERVERS_DIR/qdrant
Q_PID=$Q_DIR/qdrant.pid
Q_LOG=$Q_DIR/qdrant.log
CACHE_BIN=$HOME/.cache/strata/servers/qdrant/bin/qdrant
BUILD_SCRIPT=${QDRANT_BUILD_SCRIPT:-$REPO_ROOT/../shared/qdrant/build-qdrant.sh}
[ -f "$BUILD_SCRIPT" ] || BUILD_SCRIPT=/work/shared/qdrant/build-qdrant.sh
QGIT=${QDRANT_GIT:-/work/.mirror/qdrant+qdrant/repo}
TGIT=${TONIC_GIT:-/work/.mirror/qdrant+tonic/repo}

is_running() { pid_alive "$Q_PID" qdrant; }

find_bin() {
  if [ -n "${QDRANT_BIN:-}" ]; then
    [ -x "$QDRANT_BIN" ] || die "QDRANT_BIN=$QDRANT_BIN is not an executable"
    echo "$QDRANT_BIN"
  elif command -v qdrant >/dev/null 2>&1; then
    command -v qdrant
  elif [ -x "$CACHE_BIN" ]; then
    echo "$CACHE_BIN"
  else
    return 1
  fi
}

can_build() { [ -f "$BUILD_SCRIPT" ] && [ -d "$QGIT" ] && [ -d "$TGIT" ]; }

available() {
  local bin
  if bin=$(find_bin); then log "binary: $bin"; return 0; fi
  if can_build; then
    log "no qdrant binary yet (QDRANT_BIN, PATH, $CACHE_BIN); build it once (20-30 min): scripts/servers/qdrant.sh build"
  else
    log "no qdrant binary (QDRANT_BIN, PATH, $CACHE_BIN) and no sources to build one: set QDRANT_BIN, or give QDRANT_GIT and TONIC_GIT (bare clones of github.com/qdrant/qdrant and github.com/qdrant/tonic) and run scripts/servers/qdrant.sh build"
  fi
  return 4
}

build() {
  can_build || { available || true; exit 4; }
  mkdir -p "$Q_DIR" "$HOME/.cache/strata"
  # One build at a time: build-qdrant.sh starts by deleting its work tree.
  exec 8>"$HOME/.cache/strata/qdrant-build.lock"
  flock -n 8 || die "a qdrant build is already running (lock $HOME/.cache/strata/qdrant-build.lock)"
  # An interrupted build resumes: build-qdrant.sh would delete its work
  # tree and start over, so when that tree is there, fully patched (the
  # last patch written), cargo carries on in it and the binary is installed
  # as the script would.
  local tag=${QDRANT_TAG:-v1.17.1}
  local work=${QDRANT_BUILD_DIR:-$HOME/.cache/strata/build/qdrant-$tag}
  if [ -d "$work/src/target" ] && grep -q 'fn murmur3_32_of_slice' "$work/src/src/common/inference/bm25.rs" 2>/dev/null; then
    log "resuming the qdrant build in $work/src (log: $Q_DIR/build.log)"
    ( cd "$work/src" \
      && CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
         cargo build --release --bin qdrant \
      && mkdir -p "$(dirname "$CACHE_BIN")" \
      && install -m 755 target/release/qdrant "$CACHE_BIN" \
      && echo "$tag" >"$(dirname "$CACHE_BIN")/../VERSION" ) >"$Q_DIR/build.log" 2>&1 \
      || { tail -n 40 "$Q_DIR/build.log" >&2; die "building qdrant failed"; }
  else
    log "building qdrant from source (20-30 min on 2 cores; log: $Q_DIR/build.log)"
    bash "$BUILD_SCRIPT" "$QGIT" "$TGIT" >"$Q_DIR/build.log" 2>&1 \
      || { tail -n 40 "$Q_DIR/build.log" >&2; die "building qdrant failed"; }
  fi
  log "built: $CACHE_BIN"
}

# http PATH [KEY]: prints the HTTP status of GET PATH (000 when unreachable).
http() {
  python3 - "$Q_PORT" "$1" "${2:-}" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}")
if sys.argv[3]:
    req.add_header("api-key", sys.argv[3])
try:
    print(urllib.request.urlopen(req, timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

start() {
  local bin
  bin=$(find_bin) || { available || true; exit 4; }
  mkdir -p "$Q_DIR"
  if is_running; then
    log "already running (pid $(head -n1 "$Q_PID"))"
  else
    prepare_port "$Q_PORT"
    prepare_port "$Q_GRPC_PORT"
    rm -rf "$Q_DIR/storage" "$Q_DIR/snapshots" "$Q_PID"
    mkdir -p "$Q_DIR/storage" "$Q_DIR/snapshots"
    log "starting $bin on 127.0.0.1:$Q_PORT (REST) / $Q_GRPC_PORT (gRPC)"
    # Own session, so it outlives the calling shell; cwd = its directory
    # (qdrant writes ./.qdrant-initialized and looks for ./config there).
    (
      cd "$Q_DIR"
      QDRANT__SERVICE__HOST=127.0.0.1 \
      QDRANT__SERVICE__HTTP_PORT=$Q_PORT \
      QDRANT__SERVICE__GRPC_PORT=$Q_GRPC_PORT \
      QDRANT__SERVICE__API_KEY=$Q_KEY \
      QDRANT__STORAGE__STORAGE_PATH=$Q_DIR/storage \
      QDRANT__STORAGE__SNAPSHOTS_PATH=$Q_DIR/snapshots \
      QDRANT__TELEMETRY_DISABLED=true \
      QDRANT__LOG_LEVEL=WARN \
        setsid -f sh -c 'echo $$ >"$1"; exec "$2" >>"$3" 2>&1 </dev/null' \
          sh "$Q_PID" "$bin" "$Q_LOG"
    )
  fi
  local i
  for i in $(seq 1 240); do
    [ "$(http /readyz)" = 200 ] && break
    if [ "$i" = 240 ] || { [ "$i" -gt 3 ] && ! is_running; }; then
      echo "---- tail of $Q_LOG ----" >&2; tail -n 30 "$Q_LOG" >&2 || true
      die "qdrant not ready on 127.0.0.1:$Q_PORT"
    fi
    sleep 0.5
  done
  local without with
  without=$(http /collections)
  with=$(http /collections "$Q_KEY")
  [ "$without" = 401 ] || [ "$without" = 403 ] || die "qdrant answered $without to a request without the API key (expected 401/403)"
  [ "$with" = 200 ] || die "qdrant answered $with to a request with the API key (expected 200)"
  log "ready: qdrant $(cat "$(dirname "$bin")/../VERSION" 2>/dev/null || echo '?') on 127.0.0.1:$Q_PORT (REST) / $Q_GRPC_PORT (gRPC); API key enforced"
}

stop() {
  stop_pidfile "$Q_PID" qdrant
  rm -rf "$Q_DIR/storage" "$Q_DIR/snapshots"
}

status() {
  if is_running; then log "running (pid $(head -n1 "$Q_PID"), ports $Q_PORT/$Q_GRPC_PORT)"; else log "not running"; return 3; fi
}

print_env() {
  echo "export STRATA_QDRANT_PORT=$Q_PORT STRATA_QDRANT_GRPC_PORT=$Q_GRPC_PORT"
  echo "export QDRANT_URL=http://127.0.0.1:$Q_GRPC_PORT QDRANT_REST_URL=http://127.0.0.1:$Q_PORT QDRANT_API_KEY=$Q_KEY"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  available) available ;;
  build) build ;;
  *) echo "usage: $0 {start|stop|status|env|available|build}" >&2; exit 2 ;;
esac
