#!/usr/bin/env bash
# A bounded crash test: SIGKILLs at random moments during writes of the
# release `strata` binary, each followed by checks that nothing committed
# was lost and nothing is half-written.
#
#   1. `strata vectors upsert` of a file into a SQLite collection past its
#      HNSW threshold (an index build, inline): after each kill the database
#      passes PRAGMA integrity_check, holds whole batches only, and every
#      record it holds is the file's; a final run completes, and an exact
#      vector query finds its own record through the index.
#   2. `strata migrate --resume` SQLite -> SQLite: after each kill the target
#      passes integrity_check and never holds more rows than the source; a
#      final `--resume` completes (verified by strata: counts and checksums),
#      and the tables are compared once more here.
#   3. `strata backup restore --force` of a SQLite backup (from S3: needs
#      S3_BUCKET and S3_ENDPOINT, e.g. moto from scripts/servers/moto.sh;
#      skipped without them) over an existing database: after each kill the
#      target is either the old database as committed or the new one, never
#      a mix, and passes integrity_check; leftover temporary files are gone
#      after the next complete restore.
#
# The kill moments come from STRATA_KILL_SEED (printed; set it to replay a
# run's moments). STRATA_KILLS runs per phase (default 9; a run that ends
# before its moment is checked all the same). About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
strata=${STRATA_BIN:-$root/target/release/strata}
plugins=$(dirname "$strata")
[ -x "$strata" ] || { echo "killloop: no strata binary at $strata (cargo build --release)" >&2; exit 1; }
[ -f "$plugins/libstrata_sqlite.so" ] || { echo "killloop: no libstrata_sqlite.so beside $strata" >&2; exit 1; }

seed=${STRATA_KILL_SEED:-$(( $(date +%s%N) % 1000000 ))}
kills=${STRATA_KILLS:-9}
echo "killloop: STRATA_KILL_SEED=$seed STRATA_KILLS=$kills (replay with the same values)"
RANDOM=$seed

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fail() { echo "killloop FAILED (STRATA_KILL_SEED=$seed): $*" >&2; exit 1; }
ms() { date +%s%3N; }

# sql BACKEND QUERY: the single value of a one-row, one-column query.
sql() {
  "$strata" sql --json --backend "$1" "$2" | tr -d ' \n' | sed -E 's/^\[\{"[^"]*":(.*)\}\]$/\1/; s/^"(.*)"$/\1/'
}
integrity() {
  local got
  got=$(sql "$1" "PRAGMA integrity_check") || fail "$2: integrity_check did not run on $1"
  [ "$got" = "ok" ] || fail "$2: integrity_check on $1: $got"
}

# run_killed NAME MAX_MS CMD...: runs CMD, SIGKILLs it after a random
# 0..MAX_MS ms (unless it ended first). Sets $killed to yes or no.
killed=no
total_kills=0
run_killed() {
  local name=$1 max=$2
  shift 2
  local delay=$(( (RANDOM * 32768 + RANDOM) % (max + 1) ))
  "$@" >"$work/$name.out" 2>&1 &
  local pid=$!
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  if kill -KILL "$pid" 2>/dev/null; then
    killed=yes
    total_kills=$((total_kills + 1))
  else
    killed=no
  fi
  wait "$pid" 2>/dev/null || true
  echo "  $name: $([ $killed = yes ] && echo "killed at ${delay} ms" || echo "ended before ${delay} ms")"
}

# ---------------------------------------------------------------- 1
echo "== killloop 1/3: vectors upsert with an HNSW build =="
cat > plugins.toml <<EOF
plugin_dirs = ["$plugins"]
[backends.vec]
plugin = "sqlite"
config = { path = "./vec.sqlite", hnsw_threshold = 4000, hnsw_build = "inline" }
EOF
n=12000
batch=500
dim=32
# Record i: vector (i, i mod 7, …) normalised by the plugin's cosine; metadata {"i": i}.
awk -v n=$n -v dim=$dim 'BEGIN {
  for (i = 0; i < n; i++) {
    printf "{\"id\":\"r%d\",\"vector\":[", i
    for (d = 0; d < dim; d++) printf "%s%.4f", (d ? "," : ""), sin(i * 0.37 + d * 1.3) + (d == i % dim ? 2 : 0)
    printf "],\"metadata\":{\"i\":%d},\"text\":\"record %d\"}\n", i, i
  }
}' > records.jsonl
"$strata" vectors create c --dim $dim --metric cosine >/dev/null
t0=$(ms)
"$strata" vectors upsert c records.jsonl --batch $batch >/dev/null
full=$(( $(ms) - t0 ))
echo "  an uninterrupted upsert of $n records takes ${full} ms"
check_vectors() {
  integrity vec "$1"
  local count good
  count=$(sql vec 'SELECT count(*) FROM "strata_vec_c"')
  [ $((count % batch)) -eq 0 ] || [ "$count" -eq "$n" ] || fail "$1: $count records, not whole batches of $batch"
  good=$(sql vec "SELECT count(*) FROM \"strata_vec_c\" WHERE id = 'r' || json_extract(metadata, '\$.i') AND length(vector) = 4 * $dim AND text = 'record ' || json_extract(metadata, '\$.i')")
  [ "$good" = "$count" ] || fail "$1: $((count - good)) of $count records differ from the file"
}
for k in $(seq 1 "$kills"); do
  # Every other round starts from an empty collection, so kills land in
  # the first batches and in the build at the threshold too.
  if [ $((k % 2)) -eq 1 ]; then
    "$strata" vectors drop c >/dev/null
    "$strata" vectors create c --dim $dim --metric cosine >/dev/null
  fi
  run_killed "upsert-$k" "$full" "$strata" vectors upsert c records.jsonl --batch $batch
  check_vectors "upsert kill $k"
done
"$strata" vectors upsert c records.jsonl --batch $batch >/dev/null || fail "the upsert after the kills failed"
check_vectors "after the kills"
[ "$(sql vec 'SELECT count(*) FROM "strata_vec_c"')" -eq $n ] || fail "not every record is there after a complete upsert"
for i in 7 4321 11999; do
  sed -n "$((i + 1))p" records.jsonl | sed -E 's/.*"vector":(\[[^]]*\]).*/\1/' > q.json
  top=$("$strata" vectors query c --vector q.json --top-k 1 --json | tr -d ' \n' | sed -E 's/.*"id":"([^"]*)".*/\1/')
  [ "$top" = "r$i" ] || fail "the query for record r$i's own vector returned $top"
done

# ---------------------------------------------------------------- 2
echo "== killloop 2/3: migrate --resume sqlite -> sqlite =="
cat > plugins.toml <<EOF
plugin_dirs = ["$plugins"]
[backends.src]
plugin = "sqlite"
config = { path = "./src.sqlite" }
[backends.dst]
plugin = "sqlite"
config = { path = "./dst.sqlite" }
[roles]
sql = "src"
EOF
rows=250000
"$strata" sql --exec "
CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, data BLOB);
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $rows)
INSERT INTO t SELECT i, 'name ' || i, i * 0.25, randomblob(i % 64) FROM s;
CREATE TABLE u (a TEXT, b INTEGER, c TEXT, PRIMARY KEY (a, b));
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 20000)
INSERT INTO u SELECT 'k' || (i % 97), i, printf('%08d', i * 7) FROM s;
CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB);
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 20000)
INSERT INTO big SELECT i, randomblob(1024) FROM s;" >/dev/null
t0=$(ms)
"$strata" migrate --from src --to dst --tables t,u --batch-size 2000 >/dev/null
full=$(( $(ms) - t0 ))
echo "  an uninterrupted migration of $((rows + 40000)) rows takes ${full} ms"
rm -f dst.sqlite dst.sqlite-wal dst.sqlite-shm
check_dst() {
  integrity dst "$1"
  local tables got
  tables=$(sql dst "SELECT count(*) FROM sqlite_master WHERE name = 't'")
  if [ "$tables" = "1" ]; then
    got=$(sql dst "SELECT count(*) FROM t")
    [ "$got" -le $rows ] || fail "$1: $got rows in the target's t, the source has $rows"
  fi
}
for k in $(seq 1 "$kills"); do
  run_killed "migrate-$k" "$full" "$strata" migrate --from src --to dst --tables t,u --resume --batch-size 2000
  check_dst "migrate kill $k"
  # Two rounds start over, so the kills hit a fresh target as well.
  if [ "$k" -eq 3 ] || [ "$k" -eq 5 ]; then rm -f dst.sqlite dst.sqlite-wal dst.sqlite-shm; fi
done
"$strata" migrate --from src --to dst --tables t,u --resume --batch-size 2000 >"$work/migrate-final.out" 2>&1 \
  || fail "the migration after the kills failed: $(cat "$work/migrate-final.out")"
for q in "SELECT count(*) || ':' || sum(id) || ':' || total(score) || ':' || hex(group_concat(hex(data), '')) FROM (SELECT * FROM t ORDER BY id)" \
         "SELECT count(*) || ':' || sum(b) || ':' || group_concat(a || c, ',') FROM (SELECT * FROM u ORDER BY a, b)"; do
  [ "$(sql src "$q" | sha256sum)" = "$(sql dst "$q" | sha256sum)" ] || fail "source and target differ after the migration: $q"
done
check_dst "after the kills"

# ---------------------------------------------------------------- 3
if [ -z "${S3_BUCKET:-}" ] || [ -z "${S3_ENDPOINT:-}" ]; then
  echo "== killloop 3/3: restore --force: SKIPPED (no S3_BUCKET / S3_ENDPOINT; scripts/servers/moto.sh start, then eval \"\$(scripts/servers/moto.sh env)\") =="
  echo "killloop: passed ($total_kills SIGKILLs, STRATA_KILL_SEED=$seed)"
  exit 0
fi
echo "== killloop 3/3: backup restore --force (S3) =="
cat > plugins.toml <<EOF
plugin_dirs = ["$plugins"]
[backends.src]
plugin = "sqlite"
config = { path = "./src.sqlite" }
[backends.target]
plugin = "sqlite"
config = { path = "./target.sqlite" }
[backends.archive]
plugin = "s3"
config = { bucket = "\${S3_BUCKET}", endpoint = "\${S3_ENDPOINT}", prefix = "killloop/$seed-$(date +%s%N)/" }
[roles]
sql = "src"
backup = "archive"
[backup]
source = "src"
keep = 1
EOF
"$strata" backup now >/dev/null
new_count=$(sql src "SELECT count(*) FROM t")
# The old target: its own table, written by two processes.
old_target() {
  rm -f target.sqlite target.sqlite-wal target.sqlite-shm
  "$strata" sql --backend target --exec "CREATE TABLE old (v); INSERT INTO old VALUES ('old');" >/dev/null
  "$strata" sql --backend target "INSERT INTO old VALUES ('committed')" >/dev/null
}
old_target
t0=$(ms)
"$strata" backup restore latest --to target.sqlite --force >/dev/null
full=$(( $(ms) - t0 ))
echo "  an uninterrupted restore takes ${full} ms"
old_target
for k in $(seq 1 "$kills"); do
  run_killed "restore-$k" "$full" "$strata" backup restore latest --to target.sqlite --force
  integrity target "restore kill $k"
  if [ "$(sql target "SELECT count(*) FROM sqlite_master WHERE name = 'old'")" = "1" ]; then
    got=$(sql target "SELECT group_concat(v, ',') FROM (SELECT v FROM old ORDER BY rowid)")
    [ "$got" = "old,committed" ] || fail "restore kill $k: the old target lost commits: $got"
    [ "$(sql target "SELECT count(*) FROM sqlite_master WHERE name = 't'")" = "0" ] || fail "restore kill $k: old and new tables mixed"
    echo "    the target is the old database"
  else
    got=$(sql target "SELECT count(*) FROM t")
    [ "$got" = "$new_count" ] || fail "restore kill $k: the restored target holds $got rows of t, the backup $new_count"
    echo "    the target is the new database"
    old_target
  fi
done
"$strata" backup restore latest --to target.sqlite --force >/dev/null || fail "the restore after the kills failed"
integrity target "after the kills"
[ "$(sql target "SELECT count(*) FROM t")" = "$new_count" ] || fail "the restore after the kills is incomplete"
left=$(find . -maxdepth 1 -name '.target.sqlite.restore-*' | wc -l)
[ "$left" -eq 0 ] || fail "$left temporary restore files left after a complete restore"
echo "killloop: passed ($total_kills SIGKILLs, STRATA_KILL_SEED=$seed)"
