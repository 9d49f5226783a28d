#!/usr/bin/env bash
# Real text embeddings for `strata-bench vectors --data`: WordNet 3.0's
# glosses (Debian package wordnet-base: every synset's definition and usage
# examples, ~117K distinct short English texts), shuffled with a fixed seed,
# the first N embedded with all-MiniLM-L6-v2 (the pure-Rust MiniLmEmbedder,
# which matches sentence-transformers to 4e-7 a component).
#
#   scripts/bench/wordnet-embeddings.sh [N]      # default N = 60200
#
# Prints the .npy path (N × 384 f32), cached under ~/.cache/strata/bench.
# The bench takes the last --queries rows as queries and indexes the rest.
set -euo pipefail
n=${1:-60200}
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${STRATA_CACHE_DIR:-$HOME/.cache/strata}/bench
mkdir -p "$cache"
texts=$cache/wordnet-$n.txt
npy=$cache/wordnet-$n.npy
if [[ -s $npy ]]; then echo "$npy"; exit 0; fi
if [[ ! -r /usr/share/wordnet/data.noun ]]; then
  echo "installing wordnet-base (Debian) for its glosses" >&2
  apt-get install -y -qq wordnet-base >&2
fi
model=$("$root/scripts/models/minilm.sh")
python3 - "$n" "$texts" <<'PY'
import random, sys
n, out = int(sys.argv[1]), sys.argv[2]
seen, texts = set(), []
for pos in ("noun", "verb", "adj", "adv"):
    with open(f"/usr/share/wordnet/data.{pos}", encoding="latin-1") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:
                continue  # licence header, or no gloss
            gloss = " ".join(line.split("|", 1)[1].split())
            if gloss and gloss not in seen:
                seen.add(gloss)
                texts.append(gloss)
if n > len(texts):
    sys.exit(f"only {len(texts)} distinct glosses, {n} asked")
random.Random(42).shuffle(texts)
with open(out, "w", encoding="utf-8") as f:
    f.write("\n".join(texts[:n]) + "\n")
print(f"{n} of {len(texts)} glosses -> {out}", file=sys.stderr)
PY
cd "$root"
cargo run --release -q -p strata-memory --example embed_corpus -- "$texts" "$npy" "$model" >&2
echo "$npy"
