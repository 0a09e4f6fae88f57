"""Benchmarks of the Python bindings (figures go to docs/benchmarks.md).

    python bench/bench.py [--quick]

1. Per-call overhead of ``db.kv.get``/``put`` over the same Rust call (timed in Rust
   on the same database), and against Python's ``sqlite3`` doing the same keyed get/put
   at equal durability (WAL; ``synchronous=OFF`` vs ``no_durability``, ``FULL`` vs
   ``strict``).
2. ``StrataSaver`` vs ``SqliteSaver`` (langgraph-checkpoint-sqlite) and
   ``InMemorySaver``: put a checkpoint with 10 channels, put_writes, get_tuple, list 100;
   at each saver's defaults and at equal durability, from 1 and 8 threads.
3. ``copy_thread`` of a thread with 1,000 checkpoints.

Everything runs in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import stratadb

QUICK = "--quick" in sys.argv
VALUE = "v" * 100


def best_of(fn, repeat=7):
    """The fastest of several runs: the machine is shared, the minimum is the least
    disturbed figure."""
    return min(fn() for _ in range(repeat))


# ----------------------------------------------------------------------------- 1. KV


def kv_bench(tmp: Path) -> list[str]:
    rows = []
    n_get = 20_000 if QUICK else 50_000
    for mode, sync in (("no_durability", "OFF"), ("strict", "FULL")):
        n_put = (2_000 if QUICK else 10_000) if mode == "no_durability" else (100 if QUICK else 300)
        db = stratadb.open(tmp / f"kv-{mode}", durability=mode)
        for i in range(1000):
            db.kv.set(f"key{i}", VALUE)

        def py_get():
            get = db.kv.get
            t = time.perf_counter()
            for _ in range(n_get):
                get("key500")
            return (time.perf_counter() - t) / n_get

        def py_put():
            put = db.kv.put
            t = time.perf_counter()
            for i in range(n_put):
                put(None, "key500", VALUE)
            return (time.perf_counter() - t) / n_put

        rust_get = best_of(lambda: db._bench_rust_kv("get", "key500", VALUE, n_get) / n_get)
        rust_put = best_of(lambda: db._bench_rust_kv("put", "key500", VALUE, n_put) / n_put)
        pg, pp = best_of(py_get), best_of(py_put)
        db.close()

        con = sqlite3.connect(tmp / f"sq-{mode}.db", isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={sync}")
        con.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)")
        con.executemany("INSERT INTO kv VALUES (?, ?)", [(f"key{i}", VALUE) for i in range(1000)])

        def sq_get():
            ex = con.execute
            t = time.perf_counter()
            for _ in range(n_get):
                ex("SELECT v FROM kv WHERE k = ?", ("key500",)).fetchone()
            return (time.perf_counter() - t) / n_get

        def sq_put():
            ex = con.execute
            t = time.perf_counter()
            for _ in range(n_put):
                ex("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("key500", VALUE))
            return (time.perf_counter() - t) / n_put

        sg, sp = best_of(sq_get), best_of(sq_put)
        con.close()
        us = lambda s: f"{s * 1e6:.2f}"  # noqa: E731
        rows.append(
            f"| get | {mode} / sqlite `synchronous={sync}` | {us(rust_get)} | {us(pg)} | "
            f"{us(pg - rust_get)} | {us(sg)} | {sg / pg:.1f}× |"
        )
        rows.append(
            f"| put | {mode} / sqlite `synchronous={sync}` | {us(rust_put)} | {us(pp)} | "
            f"{us(pp - rust_put)} | {us(sp)} | {sp / pp:.1f}× |"
        )
    header = [
        "| op | durability | Rust µs/call | Python µs/call | overhead µs | sqlite3 µs/call | StrataDB speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    return header + rows


def strict_interleaved(tmp: Path, rounds: int = 4, n: int = 200) -> list[str]:
    """Strict puts are fsync-bound, and on a shared disk fsync times drift by 10× within
    minutes: StrataDB (Python), StrataDB (Rust) and sqlite3 FULL take turns, round by
    round, so each round compares like with like."""
    db = stratadb.open(tmp / "strict-rounds", durability="strict")
    con = sqlite3.connect(tmp / "strict-rounds.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)")
    out = ["| round | StrataDB Python µs | StrataDB Rust µs | sqlite3 FULL µs | ratio |", "|---|---|---|---|---|"]
    for r in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            db.kv.put(None, "key500", VALUE)
        py = (time.perf_counter() - t) / n
        rust = db._bench_rust_kv("put", "key500", VALUE, n) / n
        t = time.perf_counter()
        for _ in range(n):
            con.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("key500", VALUE))
        sq = (time.perf_counter() - t) / n
        out.append(f"| {r} | {py * 1e6:.0f} | {rust * 1e6:.0f} | {sq * 1e6:.0f} | {sq / py:.2f}× |")
    db.close()
    con.close()
    return out


# ----------------------------------------------------------------------- 2. savers


def make_checkpoint(saver, i: int, parent):
    from langgraph.checkpoint.base import empty_checkpoint

    cp = empty_checkpoint()
    cp["channel_values"] = {f"ch{c}": {"step": i, "data": "x" * 100, "list": list(range(10))} for c in range(10)}
    cp["channel_versions"] = {f"ch{c}": i + 1 for c in range(10)}
    return cp


def saver_workload(saver, thread: str, n: int) -> dict[str, float]:
    """Per-op seconds for put, put_writes, get_tuple; and list 100."""
    cfg = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    t_put = t_writes = t_get = 0.0
    for i in range(n):
        cp = make_checkpoint(saver, i, None)
        t = time.perf_counter()
        cfg = saver.put(cfg, cp, {"source": "loop", "step": i, "run_id": "r1"}, cp["channel_versions"])
        t_put += time.perf_counter() - t
        t = time.perf_counter()
        saver.put_writes(cfg, [("ch0", {"w": i}), ("ch1", "x" * 50)], f"task{i}")
        t_writes += time.perf_counter() - t
        t = time.perf_counter()
        saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        t_get += time.perf_counter() - t
    t = time.perf_counter()
    got = list(saver.list({"configurable": {"thread_id": thread}}, limit=100))
    t_list = time.perf_counter() - t
    assert len(got) == min(100, n), len(got)
    return {"put": t_put / n, "put_writes": t_writes / n, "get_tuple": t_get / n, "list100": t_list}


def threaded(saver, threads: int, n: int) -> float:
    """Checkpoint puts per second with `threads` threads, each on its own thread id."""
    def work(k):
        cfg = {"configurable": {"thread_id": f"mt{k}", "checkpoint_ns": ""}}
        for i in range(n):
            cp = make_checkpoint(saver, i, None)
            cfg = saver.put(cfg, cp, {"step": i}, cp["channel_versions"])
            saver.put_writes(cfg, [("ch0", {"w": i})], f"t{i}")

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t = time.perf_counter()
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    return threads * n / (time.perf_counter() - t)


def savers(tmp: Path):
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite import SqliteSaver

    from stratadb.langgraph import StrataSaver

    def sqlite_saver(path, sync):
        con = sqlite3.connect(path, check_same_thread=False)
        s = SqliteSaver(con)
        s.setup()
        if sync is not None:
            con.execute(f"PRAGMA synchronous={sync}")
        return s, con

    configs = [
        ("defaults", "InMemorySaver", lambda p: (InMemorySaver(), None)),
        ("defaults", "SqliteSaver (WAL, synchronous=FULL)", lambda p: sqlite_saver(p, None)),
        ("defaults", "StrataSaver (buffered)", lambda p: (StrataSaver(stratadb.open(p)), None)),
        ("no fsync", "SqliteSaver (synchronous=OFF)", lambda p: sqlite_saver(p, "OFF")),
        ("no fsync", "StrataSaver (no_durability)", lambda p: (StrataSaver(stratadb.open(p, "no_durability")), None)),
        ("fsync every put", "SqliteSaver (synchronous=FULL)", lambda p: sqlite_saver(p, "FULL")),
        ("fsync every put", "StrataSaver (strict)", lambda p: (StrataSaver(stratadb.open(p, "strict")), None)),
    ]
    n = 100 if QUICK else 200
    n_mt = 20 if QUICK else 50
    rows = []
    for k, (group, name, make) in enumerate(configs):
        saver, con = make(str(tmp / f"saver{k}"))
        runs = [saver_workload(saver, f"bench{j}", n) for j in range(3)]
        r = {op: min(x[op] for x in runs) for op in runs[0]}
        one = max(threaded(saver, 1, n_mt) for _ in range(2))
        eight = max(threaded(saver, 8, n_mt) for _ in range(2))
        rows.append((group, name, r, one, eight))
        if con is not None:
            con.close()
        elif hasattr(saver, "db"):
            saver.db.close()
    out = [
        "| durability | saver | put µs | put_writes µs | get_tuple µs | list 100 ms | puts/s 1 thread | puts/s 8 threads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, name, r, one, eight in rows:
        out.append(
            f"| {group} | {name} | {r['put'] * 1e6:.0f} | {r['put_writes'] * 1e6:.0f} | "
            f"{r['get_tuple'] * 1e6:.0f} | {r['list100'] * 1e3:.2f} | {one:.0f} | {eight:.0f} |"
        )
    return out, rows


def copy_bench(tmp: Path) -> list[str]:
    from stratadb.langgraph import StrataSaver

    out = []
    for mode in ("no_durability", "buffered", "strict"):
        db = stratadb.open(tmp / f"copy-{mode}", mode)
        saver = StrataSaver(db)
        cfg = {"configurable": {"thread_id": "src", "checkpoint_ns": ""}}
        for i in range(1000):
            cp = make_checkpoint(saver, i, None)
            cfg = saver.put(cfg, cp, {"step": i, "run_id": "r"}, cp["channel_versions"])
        times = []
        for j in range(21):
            t = time.perf_counter()
            saver.copy_thread("src", f"dst{j}")
            times.append(time.perf_counter() - t)
        assert len(list(saver.list({"configurable": {"thread_id": "dst0"}}))) == 1000
        out.append(f"| {mode} | {statistics.median(times) * 1e3:.3f} | {min(times) * 1e3:.3f} |")
        db.close()
    return ["| durability | median ms | best ms |", "|---|---|---|"] + out


def main():
    argparse.ArgumentParser(description=__doc__).add_argument("--quick", action="store_true")
    with tempfile.TemporaryDirectory(prefix="stratadb-bench-") as d:
        tmp = Path(d)
        print("## KV per call\n")
        print("\n".join(kv_bench(tmp)))
        print("\n### strict puts, interleaved rounds\n")
        print("\n".join(strict_interleaved(tmp)))
        print("\n## Checkpointers\n")
        table, _ = savers(tmp)
        print("\n".join(table))
        print("\n## copy_thread of 1,000 checkpoints\n")
        print("\n".join(copy_bench(tmp)))


if __name__ == "__main__":
    main()
