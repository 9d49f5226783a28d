"""hnswlib (the C++ library, through its Python binding) for `strata-bench
vectors --hnswlib PYTHON`: the bench starts this script once per size and
drives it over stdin/stdout, so hnswlib's query passes run back to back
with the plugin's and hnsw_rs's (same data, queries, M, ef_construction,
ef list, top k, rounds).

    python hnswlib_reference.py DATA.f32 QUERIES.f32 DIM M EF_CONSTRUCTION K

DATA.f32 / QUERIES.f32: little-endian f32, row after row. The index is
built on every core (`num_threads=-1`, space "cosine": hnswlib normalises),
then queries run one at a time on one thread, each `knn_query` on a 1 × DIM
array prepared beforehand, timed with `perf_counter_ns`.

Protocol: after the build one JSON line {"build_s", "version"}; then for
every input line "EF WARMUP" one JSON line {"ids", "lat_ns", "total_ns"}.
An EF of 0 asks for exact search with numpy instead (the baseline of the
exact row): the collection L2-normalised once, then per query one BLAS
matrix-vector product and `argpartition` + sort of the best k.
Install: `pip install hnswlib numpy` (PyPI; hnswlib compiles from source).
"""

import json
import sys
import time
from importlib import metadata

import hnswlib
import numpy as np


def main() -> None:
    data_path, queries_path = sys.argv[1], sys.argv[2]
    dim, m, ef_construction, k = (int(x) for x in sys.argv[3:7])
    data = np.fromfile(data_path, dtype="<f4").reshape(-1, dim)
    queries = np.fromfile(queries_path, dtype="<f4").reshape(-1, dim)
    qs = [np.ascontiguousarray(queries[i : i + 1]) for i in range(len(queries))]
    start = time.perf_counter()
    index = hnswlib.Index(space="cosine", dim=dim)
    index.init_index(max_elements=len(data), ef_construction=ef_construction, M=m, random_seed=100)
    index.add_items(data, np.arange(len(data)), num_threads=-1)
    build_s = time.perf_counter() - start
    index.set_num_threads(1)
    version = metadata.version("hnswlib")
    print(json.dumps({"build_s": build_s, "version": version}), flush=True)
    normed = data / np.linalg.norm(data, axis=1, keepdims=True)
    normed = np.ascontiguousarray(normed, dtype=np.float32)

    def exact(q):
        scores = normed @ (q[0] / np.linalg.norm(q[0]))
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top], kind="stable")]

    for line in sys.stdin:
        ef, warmup = (int(x) for x in line.split())
        if ef > 0:
            index.set_ef(ef)
            search = lambda q: index.knn_query(q, k=k)[0][0]  # noqa: E731
        else:
            search = exact
        for i in range(warmup):
            search(qs[i % len(qs)])
        ids, lat = [], []
        total = time.perf_counter_ns()
        for q in qs:
            t = time.perf_counter_ns()
            labels = search(q)
            lat.append(time.perf_counter_ns() - t)
            ids.append(labels.tolist())
        total = time.perf_counter_ns() - total
        print(json.dumps({"ids": ids, "lat_ns": lat, "total_ns": total}), flush=True)


if __name__ == "__main__":
    main()
