"""Ingestion benchmark: `read_corpus` throughput on a generated JSONL corpus and a source tree.

    python benchmarks/ingest.py                 # 1 GiB JSONL + 20,000 small text files
    python benchmarks/ingest.py --mb 64 --files 2000

The JSONL corpus is valid UTF-8 (ASCII plus accented, Cyrillic and CJK words) with a few
metadata fields, written to a temporary directory that is deleted afterwards. The file was just
written, so it is read from the page cache: this measures parsing, not the disk.
Target (issue 3): >= 100 MB/s on 1 GB of JSONL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from rlm_ray.corpus.ingest import read_corpus

WORDS = (
    "the of corpus model recursive answer ray arrow naïve café über данные 日本語 テキスト".split()
)


def write_jsonl(path: Path, mb: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    # a pool of distinct lines, repeated with fresh ids: generation stays far faster than reading
    pool = [" ".join(rng.choices(WORDS, k=rng.randint(20, 600))) for _ in range(1000)]
    target = mb * 2**20
    written = 0
    with path.open("wb") as f:
        i = 0
        while written < target:
            record = {"id": i, "title": f"doc {i}", "lang": "mixed", "text": pool[i % len(pool)]}
            line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
            written += f.write(line)
            i += 1
    return path.stat().st_size


def write_tree(root: Path, files: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    total = 0
    for i in range(files):
        path = root / f"pkg{i % 50}" / f"sub{i % 7}" / f"file{i}.{'py' if i % 2 else 'md'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        total += path.write_text(" ".join(rng.choices(WORDS, k=rng.randint(50, 500))))
    return total


def timed(label: str, path: Path, size: int) -> None:
    start = time.perf_counter()
    table, report = read_corpus(path)
    elapsed = time.perf_counter() - start
    print(
        f"{label}: {size / 1e6:,.0f} MB, {report.documents:,} documents in {elapsed:.2f} s"
        f" -> {size / 1e6 / elapsed:,.0f} MB/s ({table.nbytes / 1e6:,.0f} MB in Arrow)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="JSONL size in MiB (default 1024)")
    parser.add_argument("--files", type=int, default=20_000, help="small text files (0 to skip)")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="rlm-ingest-") as tmp:
        corpus = Path(tmp, "corpus.jsonl")
        start = time.perf_counter()
        size = write_jsonl(corpus, args.mb)
        print(f"generated {size / 1e6:,.0f} MB of JSONL in {time.perf_counter() - start:.1f} s")
        timed("jsonl", corpus, size)
        corpus.unlink()  # free the disk before the next part
        if args.files:
            tree = Path(tmp, "tree")
            size = write_tree(tree, args.files)
            timed(f"directory of {args.files:,} files", tree, size)


if __name__ == "__main__":
    main()
