"""The reference side of benchmarks/embeddings.md: sentence-transformers
(PyTorch, CPU) embedding the same texts as memory/examples/embed_bench.rs,
batch 1 then batch 32, best of three runs after a warm-up.

    /work/embed-venv/bin/python benchmarks/embeddings_reference.py \
        "$(scripts/models/minilm.sh)" benchmarks/embeddings-texts.txt
"""

import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(sys.argv[1], device="cpu")
texts = [l for l in open(sys.argv[2], encoding="utf-8").read().splitlines() if l.strip()]
tokens = sum(len(model.tokenizer(t, truncation=True, max_length=256)["input_ids"]) for t in texts)
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(texts)} texts, {tokens} tokens")
for batch in (1, 32):
    model.encode(texts[:8], batch_size=batch)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for i in range(0, len(texts), batch):
            model.encode(texts[i : i + batch], batch_size=batch)
        best = min(best, time.perf_counter() - t)
    print(f"batch {batch:>2}: {len(texts) / best:7.1f} texts/s  {tokens / best:8.0f} tokens/s  ({best:.2f} s, best of 3)")
