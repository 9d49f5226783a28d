#!/usr/bin/env bash
# The plugin's CI, runnable on your machine: ci/github-workflow.yml runs
# exactly these steps, one per workflow step.
#
#   ci/run.sh                 install, build, test, conformance
#   ci/run.sh STEP…           only those steps
#
# Steps:
#   install      get the strata-conformance binary (see below)
#   build        cargo build --release: the .so the host will load
#   test         cargo test --release: unit tests, and tests/conformance.rs
#                (the same suite through the same binary, a few seconds)
#   conformance  run strata-conformance against the built .so, writing a
#                JUnit report; its last line is `N passed, N failed, N skipped`
#
# Where strata-conformance comes from, first match:
#   STRATA_CONFORMANCE=FILE    an existing binary: `install` does nothing
#   STRATA_GIT=URL             cargo install --git URL [--rev STRATA_REV]
#                              into STRATA_TOOLS (~/.cache/strata-tools):
#                              what CI does, cached per revision
#   STRATA_DIR=DIR             cargo build in a strata checkout (path)
#   (none of these)            the strata checkout this directory sits in,
#                              when there is one (examples/plugin-template)
# The binary is a tool, not a dependency of the plugin: built once, reused.
#
# Other settings: SUITE (vector; sql, blob or all for other contracts),
# CONFIG (conformance.toml: the plugin's config table for the run; `${VAR}`
# reads the environment, e.g. a test server's URL), JUNIT (the report,
# default <target dir>/conformance-junit.xml). Relative paths are read from
# the plugin's directory (the one holding Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
plugin_dir=$(pwd)

SUITE=${SUITE:-vector}
CONFIG=${CONFIG:-conformance.toml}

# The package name, from this crate's Cargo.toml (the first `name =`, the
# one under [package]): `strata-mydb` builds libstrata_mydb.so.
package=$(sed -n 's/^name *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
[ -n "$package" ] || { echo "ci/run.sh: no package name in Cargo.toml" >&2; exit 2; }
stem=${package#strata-}
stem=${stem//-/_}
case "$(uname -s)" in
  Darwin) lib="libstrata_$stem.dylib" ;;
  MINGW* | MSYS* | CYGWIN*) lib="strata_$stem.dll" ;;
  *) lib="libstrata_$stem.so" ;;
esac

# Where cargo puts this crate's build (honours CARGO_TARGET_DIR, and a
# parent workspace's target dir).
target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path "$1/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
}
target=$(target_dir "$plugin_dir")
JUNIT=${JUNIT:-$target/conformance-junit.xml}

# --locked when a lock file exists (commit yours: a cdylib is an
# application, its CI should build what you tested).
ws_manifest=$(cargo locate-project --workspace --message-format plain)
locked=()
[ -f "$(dirname "$ws_manifest")/Cargo.lock" ] && locked=(--locked)

if [ -z "${STRATA_CONFORMANCE:-}" ] && [ -z "${STRATA_GIT:-}" ] && [ -z "${STRATA_DIR:-}" ] &&
  [ -f "$plugin_dir/../../conformance/Cargo.toml" ]; then
  STRATA_DIR=$(cd "$plugin_dir/../.." && pwd)
fi
tools=${STRATA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-tools}
exe=strata-conformance
case "$lib" in *.dll) exe=strata-conformance.exe ;; esac
if [ -n "${STRATA_CONFORMANCE:-}" ]; then
  conformance_bin=$STRATA_CONFORMANCE
elif [ -n "${STRATA_GIT:-}" ]; then
  conformance_bin=$tools/bin/$exe
elif [ -n "${STRATA_DIR:-}" ]; then
  conformance_bin=$(target_dir "$STRATA_DIR")/release/$exe
else
  echo "ci/run.sh: say where strata-conformance comes from: STRATA_CONFORMANCE, STRATA_GIT or STRATA_DIR" >&2
  exit 2
fi

step_install() {
  if [ -n "${STRATA_CONFORMANCE:-}" ]; then
    echo "strata-conformance: $STRATA_CONFORMANCE (given)"
  elif [ -n "${STRATA_GIT:-}" ]; then
    # Skipped by cargo when this revision is installed there already.
    cargo install --locked --root "$tools" --git "$STRATA_GIT" \
      ${STRATA_REV:+--rev "$STRATA_REV"} strata-conformance
  else
    cargo build --release --locked --manifest-path "$STRATA_DIR/Cargo.toml" -p strata-conformance
  fi
  [ -x "$conformance_bin" ] || { echo "ci/run.sh: $conformance_bin missing" >&2; exit 2; }
  "$conformance_bin" --version
}

step_build() {
  cargo build --release "${locked[@]}"
  [ -f "$target/release/$lib" ] || {
    echo "ci/run.sh: cargo built no $target/release/$lib (is the package named strata-<name>, with crate-type cdylib?)" >&2
    exit 2
  }
}

step_conformance() {
  [ -x "$conformance_bin" ] || { echo "ci/run.sh: no $conformance_bin: run the install step" >&2; exit 2; }
  mkdir -p "$(dirname "$JUNIT")"
  rm -f "$JUNIT"
  echo "JUnit report: $JUNIT"
  local rc=0
  "$conformance_bin" --plugin "$target/release/$lib" --config "$CONFIG" \
    --suite "$SUITE" --junit "$JUNIT" || rc=$?
  # The binary exits 3 when it cannot write the JUnit file; the check
  # below also covers an older binary that exited 0 without one (CI would
  # publish nothing and be green).
  if [ ! -s "$JUNIT" ]; then
    echo "ci/run.sh: no JUnit report at $JUNIT" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
  return "$rc"
}

step_test() {
  STRATA_CONFORMANCE=$conformance_bin cargo test --release "${locked[@]}"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(install build test conformance)
for s in "${steps[@]}"; do
  case "$s" in
    install | build | test | conformance)
      echo "== $s =="
      "step_$s"
      ;;
    *)
      echo "ci/run.sh: unknown step $s (install, build, test, conformance)" >&2
      exit 2
      ;;
  esac
done
