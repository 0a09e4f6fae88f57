"""StrataSaver's layout: one StrataDB run per LangGraph thread, copies that are run forks,
deletes that purge, a cache that never serves a deleted thread, and the conversion of
databases written by the first layout."""

import subprocess
import sys
import threading

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

import stratadb
from stratadb.langgraph import StrataSaver


def cfg(thread, ns=""):
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}


def put(saver, thread, i, ns="", run_id=None):
    cp = empty_checkpoint()
    cp["channel_values"] = {"i": i}
    md = {"step": i}
    if run_id is not None:
        md["run_id"] = run_id
    return saver.put(cfg(thread, ns), cp, md, {})


def values(saver, thread):
    return [c.checkpoint["channel_values"]["i"] for c in saver.list(cfg(thread))]


def thread_run(db, thread):
    return db.kv.get(f"lg:t/{thread}").value


def test_each_thread_has_its_own_run(db):
    saver = StrataSaver(db)
    put(saver, "a", 1)
    put(saver, "b", 2)
    ra, rb = thread_run(db, "a"), thread_run(db, "b")
    assert ra != rb and db.runs.exists(ra) and db.runs.exists(rb)
    assert db.runs.get(ra).value["metadata"] == {
        "langgraph_thread": "a",
        "langgraph_catalog": db.runs.default_run(),
        "fork_depth": 0,
    }
    # The default run holds only the catalog.
    assert db.kv.keys(None, "") == ["lg:t/a", "lg:t/b"]


def test_copy_thread_forks_and_the_copies_diverge(db):
    saver = StrataSaver(db)
    for i in range(50):
        put(saver, "src", i, run_id="r1")
    newest = saver.get_tuple(cfg("src")).config
    saver.put_writes(newest, [("ch", "w")], "task")
    saver.copy_thread("src", "dst")
    src_run, dst_run = thread_run(db, "src"), thread_run(db, "dst")
    assert db.runs.get(dst_run).value["forked_from"]["parent"] == src_run
    # The copy answers with its own thread id and the same checkpoints and writes.
    latest = saver.get_tuple(cfg("dst"))
    assert latest.config["configurable"]["thread_id"] == "dst"
    assert latest.pending_writes == [("task", "ch", "w")]
    assert values(saver, "dst") == list(reversed(range(50)))
    # From now on they diverge.
    put(saver, "src", 100)
    put(saver, "dst", 200)
    assert values(saver, "src")[0] == 100 and 200 not in values(saver, "src")
    assert values(saver, "dst")[0] == 200 and 100 not in values(saver, "dst")
    # delete_for_runs reaches the copy's inherited checkpoints.
    saver.delete_for_runs(["r1"])
    assert values(saver, "src") == [100] and values(saver, "dst") == [200]
    assert saver.get_tuple(cfg("dst")).checkpoint["channel_values"] == {"i": 200}


def test_a_copy_survives_deleting_its_source(db):
    saver = StrataSaver(db)
    for i in range(5):
        put(saver, "src", i)
    saver.copy_thread("src", "dst")
    src_run = thread_run(db, "src")
    saver.delete_thread("src")
    assert not db.runs.exists(src_run)  # purged
    assert db.kv.get("lg:t/src") is None
    assert saver.get_tuple(cfg("src")) is None
    assert values(saver, "dst") == [4, 3, 2, 1, 0]
    # The source thread can start again, in a new run.
    put(saver, "src", 9)
    assert values(saver, "src") == [9] and thread_run(db, "src") != src_run


def test_copy_of_a_missing_thread_or_onto_itself_changes_nothing(db):
    saver = StrataSaver(db)
    saver.copy_thread("nobody", "dst")
    assert saver.get_tuple(cfg("dst")) is None and db.kv.get("lg:t/dst") is None
    put(saver, "a", 1)
    saver.copy_thread("a", "a")
    assert values(saver, "a") == [1]


def test_a_cached_run_that_another_saver_deleted_is_looked_up_again(db):
    one, two = StrataSaver(db), StrataSaver(db)
    put(one, "t", 1)
    assert values(two, "t") == [1]  # `two` caches the thread's run
    one.delete_thread("t")
    assert two.get_tuple(cfg("t")) is None
    assert values(two, "t") == []
    put(one, "t", 2)
    assert values(two, "t") == [2]
    put(two, "t", 3)  # into the new run, not the purged one
    assert values(one, "t") == [3, 2]


def test_savers_creating_one_thread_at_once_agree_on_its_run(tmp_path):
    db = stratadb.open(tmp_path / "db")
    savers = [StrataSaver(db) for _ in range(8)]
    barrier = threading.Barrier(8)

    def worker(k):
        barrier.wait()
        for i in range(10):
            put(savers[k], "shared", k * 100 + i)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    got = values(savers[0], "shared")
    assert sorted(got) == sorted(k * 100 + i for k in range(8) for i in range(10))
    # The losers' empty runs were purged: one run holds the thread.
    runs = [r.value["run_id"] for r in db.runs.list()]
    owned = [
        r
        for r in runs
        if (db.runs.get(r).value["metadata"] or {}).get("langgraph_thread") == "shared"
    ]
    assert owned == [thread_run(db, "shared")]
    db.close()


def write_first_layout_exact(db):
    """Writes two threads the way the first StrataSaver layout did: everything in the
    default run under lg:c/, lg:h/, lg:w/, lg:r/ and lg:tr/ (thread "b/x" escaped)."""
    serde = JsonPlusSerializer()
    newest = {}
    for t, et in (("a", "a"), ("b/x", "b%2Fx")):
        parent = None
        for i in range(3):
            cp = empty_checkpoint()
            cp["channel_values"] = {"i": i}
            cid = cp["id"]
            ct, cb = serde.dumps_typed(cp)
            mt, mb = serde.dumps_typed({"step": i, "run_id": f"run-{i}"})
            db.kv.set(f"lg:c/{et}//{cid}", [ct, cb, mt, mb, parent])
            db.kv.set(f"lg:r/run-{i}/{et}//{cid}", 1)
            db.kv.set(f"lg:tr/{et}/run-{i}//{cid}", 1)
            parent = cid
        wt, wb = serde.dumps_typed("pending")
        db.kv.set(f"lg:w/{et}//{parent}/task/0", ["ch", wt, wb, ""])
        db.kv.set(f"lg:h/{et}/", parent)
        newest[t] = parent
    db.kv.set("unrelated", "kept")
    return newest


def test_a_database_of_the_first_layout_is_converted(tmp_path):
    path = tmp_path / "db"
    with stratadb.open(path) as db:
        newest = write_first_layout_exact(db)
    with stratadb.open(path) as db:
        saver = StrataSaver(db)
        assert db.kv.keys(None, "") == ["lg:t/a", "lg:t/b%2Fx", "unrelated"]
        for t in ("a", "b/x"):
            latest = saver.get_tuple(cfg(t))
            assert latest.checkpoint["id"] == newest[t]
            assert latest.pending_writes == [("task", "ch", "pending")]
            assert values(saver, t) == [2, 1, 0]
        saver.delete_for_runs(["run-2"])
        assert values(saver, "a") == [1, 0] and values(saver, "b/x") == [1, 0]
        assert saver.get_tuple(cfg("a")).checkpoint["channel_values"] == {"i": 1}
    # A second saver finds nothing left to convert.
    with stratadb.open(path) as db:
        assert values(StrataSaver(db), "a") == [1, 0]


def test_a_conversion_cut_by_a_kill_is_finished_by_the_next_saver(tmp_path):
    path = tmp_path / "db"
    with stratadb.open(path, durability="strict") as db:
        write_first_layout_exact(db)
    # Kill a child mid-conversion: after its first chunk transaction commits.
    code = (
        "import os, signal, sys, stratadb\n"
        "from stratadb.langgraph import saver as s\n"
        "s._MIGRATE_CHUNK = 2\n"
        "db = stratadb.open(sys.argv[1], durability='strict')\n"
        "real = db.transaction\n"
        "calls = []\n"
        "class Db:\n"
        "    def __getattr__(self, n):\n"
        "        return getattr(db, n)\n"
        "    def transaction(self, f):\n"
        "        out = real(f)\n"
        "        calls.append(1)\n"
        "        if len(calls) == 3:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "        return out\n"
        "s.StrataSaver(Db())\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(path)])
    assert r.returncode == -9
    with stratadb.open(path) as db:
        saver = StrataSaver(db)
        for t in ("a", "b/x"):
            assert values(saver, t) == [2, 1, 0]
            assert saver.get_tuple(cfg(t)).pending_writes == [("task", "ch", "pending")]
        assert not [k for k in db.kv.keys(None, "lg:") if not k.startswith("lg:t/")]


# Review findings: each test failed against the first version of the per-thread layout.


def _forking_db(db, during_fork):
    """`db` with `runs.fork` running `during_fork()` first: a window in which another
    saver acts while this one forks."""

    class Runs:
        def __getattr__(self, n):
            return getattr(db.runs, n)

        def fork(self, run, *a):
            during_fork()
            return db.runs.fork(run, *a)

    class Db:
        runs = Runs()

        def __getattr__(self, n):
            return getattr(db, n)

    return Db()


def test_a_copy_never_replaces_a_thread_created_during_the_fork(db):
    other = StrataSaver(db)
    put(other, "src", 1)
    StrataSaver(_forking_db(db, lambda: put(other, "dst", 42))).copy_thread("src", "dst")
    assert sorted(values(StrataSaver(db), "dst")) == [1, 42]  # merged, not replaced
    put(other, "dst", 43)  # `other` cached dst's run: still the thread's run
    assert 43 in values(StrataSaver(db), "dst")
    # The losing fork was purged: every thread run is named by the catalog.
    named = {v for _, v in db.kv.scan(None, "lg:t/")}
    mine = [
        r.value["run_id"]
        for r in db.runs.list()
        if (r.value["metadata"] or {}).get("langgraph_thread") is not None
    ]
    assert sorted(mine) == sorted(named)


def test_list_looks_a_stale_cached_thread_up_again(db):
    one, two = StrataSaver(db), StrataSaver(db)
    put(one, "t", 1)
    assert values(two, "t") == [1]  # `two` caches the run
    one.delete_thread("t")
    put(one, "t", 2)  # a new run
    assert values(two, "t") == [2]


def test_copy_thread_with_stale_cached_threads(db):
    one, two = StrataSaver(db), StrataSaver(db)
    put(one, "src", 1)
    put(one, "dst", 2)
    values(two, "dst")
    values(two, "src")
    one.delete_thread("dst")
    two.copy_thread("src", "dst")  # into a thread that no longer exists: a fork
    assert values(StrataSaver(db), "dst") == [1]
    one.delete_thread("src")
    put(one, "src", 3)
    two.copy_thread("src", "dst")  # from a recreated source: merged
    assert sorted(values(StrataSaver(db), "dst")) == [1, 3]


def test_list_with_a_limit_of_zero_or_less_yields_nothing(db):
    s = StrataSaver(db)
    for i in range(3):
        put(s, "t", i)
    for limit in (0, -1):
        assert list(s.list(cfg("t"), limit=limit)) == []
        assert list(s.list(cfg("t"), filter={"step": 1}, limit=limit)) == []
        assert list(s.list(None, filter={"step": 1}, limit=limit)) == []


def test_a_copy_names_its_own_thread_and_depth(db):
    s = StrataSaver(db)
    put(s, "src", 1)
    s.copy_thread("src", "dst")
    s.copy_thread("dst", "dst2")
    md = db.runs.get(thread_run(db, "dst2")).value["metadata"]
    assert md["langgraph_thread"] == "dst2" and md["fork_depth"] == 2


def test_deep_copies_of_copies_stop_forking(db):
    from stratadb.langgraph import saver as saver_module

    s = StrataSaver(db)
    put(s, "t0", 0)
    depth = saver_module._MAX_FORK_DEPTH
    for i in range(depth + 3):
        s.copy_thread(f"t{i}", f"t{i + 1}")
    last = f"t{depth + 3}"
    info = db.runs.get(thread_run(db, last)).value
    assert info["metadata"]["fork_depth"] <= depth
    assert values(s, last) == [0]
    # The copy past the limit is a fresh run, not a fork.
    fresh = db.runs.get(thread_run(db, f"t{depth + 1}")).value
    assert fresh["forked_from"] is None and fresh["metadata"]["fork_depth"] == 0


def test_sweep_orphans_purges_unnamed_thread_runs_only(db):
    s = StrataSaver(db)
    put(s, "src", 1)
    src_run = thread_run(db, "src")
    # What a crash between the fork and the catalog entry leaves behind.
    orphan = db.runs.fork(src_run)
    other_catalog = db.runs.create({"purpose": "another saver's catalog"})
    put(StrataSaver(db, run=other_catalog), "x", 1)
    unrelated = db.runs.create({"app": "mine"})
    assert s.sweep_orphans() == 0  # too young
    assert s.sweep_orphans(min_age_seconds=0) == 1
    assert not db.runs.exists(orphan)
    assert db.runs.exists(src_run) and db.runs.exists(unrelated)
    assert values(StrataSaver(db, run=other_catalog), "x") == [1]
    assert values(s, "src") == [1]
