#!/usr/bin/env bash
# S3-compatible test server: moto_server (PyPI's moto) on loopback.
#
# Usage: scripts/servers/moto.sh {start|stop|status|env}
#   start   pip install moto (first time) into .servers/venv, start
#           `moto_server -H 127.0.0.1 -p ${STRATA_S3_PORT:-15900}` in the
#           background, wait until it answers, then prove S3 works with boto3
#           (create bucket, put, get, delete), then create the bucket
#           ${STRATA_S3_BUCKET:-strata-test} the tests use. Idempotent.
#   stop    stop it (no-op when not running)
#   status  exit 0 if running, 3 if not
#   env     print exports:  eval "$(scripts/servers/moto.sh env)"
#
# Installs moto[s3] + flask + flask-cors (what moto_server needs for S3)
# rather than moto[server], which pulls every AWS service's dependencies
# (cfn-lint, sympy, ...) and takes ~3x longer to install. State is in memory
# only: a restart empties all buckets. Use path-style addressing
# (e.g. aws-sdk-s3 force_path_style(true)); any access key is accepted.
# Files: .servers/moto/moto.pid, .servers/moto/moto.log.

# shellcheck source=scripts/servers/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

S3_PORT=${STRATA_S3_PORT:-15900}
S3_BUCKET=${STRATA_S3_BUCKET:-strata-test}
MOTO_DIR=$STRATA_SERVERS_DIR/moto
MOTO_PID=$MOTO_DIR/moto.pid
MOTO_LOG=$MOTO_DIR/moto.log

is_running() { pid_alive "$MOTO_PID" moto_server; }

s3_check() {
  "$VENV/bin/python" - "$S3_PORT" <<'EOF'
import sys, uuid, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}",
                  aws_access_key_id="test", aws_secret_access_key="test",
                  region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
bucket = f"strata-selfcheck-{uuid.uuid4().hex[:12]}"
s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello strata")
body = s3.get_object(Bucket=bucket, Key="hello.txt")["Body"].read()
assert body == b"hello strata", body
s3.delete_object(Bucket=bucket, Key="hello.txt")
s3.delete_bucket(Bucket=bucket)
EOF
}

start() {
  ensure_pip moto "${MOTO_SPECS[@]}"
  mkdir -p "$MOTO_DIR"
  if is_running; then
    log "already running (pid $(head -n1 "$MOTO_PID"))"
  else
    prepare_port "$S3_PORT"
    rm -f "$MOTO_PID"
    log "starting moto_server on 127.0.0.1:$S3_PORT"
    # setsid -f: own session, so it outlives the calling shell's job control.
    # shellcheck disable=SC2016  # expanded by the inner sh
    setsid -f sh -c 'echo $$ >"$1"; exec "$2" -H 127.0.0.1 -p "$3" >>"$4" 2>&1 </dev/null' \
      sh "$MOTO_PID" "$VENV/bin/moto_server" "$S3_PORT" "$MOTO_LOG"
  fi
  local i
  # Up to 120 s: Python imports slowly on a loaded 2-core machine; a
  # process that died is reported at once.
  for i in $(seq 1 240); do
    port_open "$S3_PORT" && break
    if [ "$i" = 240 ] || { [ "$i" -gt 3 ] && ! is_running; }; then
      echo "---- tail of $MOTO_LOG ----" >&2; tail -n 30 "$MOTO_LOG" >&2 || true
      die "moto_server not listening on 127.0.0.1:$S3_PORT"
    fi
    sleep 0.5
  done
  if ! s3_check >"$MOTO_DIR/check.log" 2>&1; then
    cat "$MOTO_DIR/check.log" >&2; tail -n 20 "$MOTO_LOG" >&2 || true
    die "S3 round trip against moto_server failed"
  fi
  if ! make_bucket "$S3_BUCKET" >"$MOTO_DIR/bucket.log" 2>&1; then
    cat "$MOTO_DIR/bucket.log" >&2
    die "cannot create bucket $S3_BUCKET on moto_server"
  fi
  log "ready: moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)') S3 on http://127.0.0.1:$S3_PORT (bucket create/put/get/delete ok; bucket $S3_BUCKET exists)"
}

# Creates bucket $1 unless it exists (the S3 plugin never creates buckets).
make_bucket() {
  "$VENV/bin/python" - "$S3_PORT" "$1" <<'EOF'
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}",
                  aws_access_key_id="test", aws_secret_access_key="test",
                  region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
if sys.argv[2] not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket=sys.argv[2])
EOF
}

stop() { stop_pidfile "$MOTO_PID" moto_server; }

status() {
  if is_running; then log "running (pid $(head -n1 "$MOTO_PID"), port $S3_PORT)"; else log "not running"; return 3; fi
}

print_env() {
  echo "export STRATA_S3_PORT=$S3_PORT"
  echo "export S3_ENDPOINT=http://127.0.0.1:$S3_PORT S3_BUCKET=$S3_BUCKET AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 {start|stop|status|env}" >&2; exit 2 ;;
esac
