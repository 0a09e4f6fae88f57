"""The Pythonic mirror of the facade: values, primitives, runs, transactions, errors,
lifecycle and the GIL."""

import asyncio
import math
import subprocess
import sys
import threading
import time

import pytest

import stratadb
from stratadb import (
    ClosedError,
    ConflictError,
    ConstraintViolationError,
    InvalidKeyError,
    NotFoundError,
    RunError,
    StrataError,
    WrongTypeError,
)

VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    0.5,
    -0.0,
    1e308,
    "",
    "héllo ☺",
    b"",
    b"\x00\xffbytes",
    [],
    [1, "a", None, [b"x"]],
    {},
    {"a": {"b": [1, 2.5, {"c": b"d"}]}, "n": None, "t": True},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_round_trip_exactly(db, value):
    db.kv.set("k", value)
    got = db.kv.get("k").value
    assert got == value
    assert type(got) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, got) == math.copysign(1, value)


def test_bytes_are_not_strings(db):
    db.kv.set("b", b"abc")
    db.kv.set("s", "abc")
    assert db.kv.get("b").value == b"abc" and isinstance(db.kv.get("b").value, bytes)
    assert db.kv.get("s").value == "abc" and isinstance(db.kv.get("s").value, str)
    db.kv.set("ba", bytearray(b"xy"))
    assert db.kv.get("ba").value == b"xy"


def test_tuples_read_back_as_lists_and_nan(db):
    db.kv.set("t", (1, 2))
    assert db.kv.get("t").value == [1, 2]
    db.kv.set("nan", float("nan"))
    assert math.isnan(db.kv.get("nan").value)


def test_big_ints_are_a_clear_error(db):
    with pytest.raises(OverflowError, match="64 bits"):
        db.kv.set("k", 2**64)
    with pytest.raises(OverflowError):
        db.kv.set("k", {"nested": [-(2**63) - 1]})
    assert db.kv.get("k") is None


def test_unsupported_types_are_type_errors(db):
    with pytest.raises(TypeError, match="set"):
        db.kv.set("k", {1, 2})
    with pytest.raises(TypeError, match="dict keys must be str"):
        db.kv.set("k", {1: "x"})
    a = []
    a.append(a)
    with pytest.raises(ValueError, match="levels"):
        db.kv.set("k", a)


def test_versioned_results(db):
    before = time.time_ns() // 1000
    v = db.kv.put(None, "k", 1)
    got = db.kv.get("k")
    assert isinstance(got, stratadb.Versioned)
    assert got.value == 1 and got.version == v and got.version_kind == "txn"
    assert before <= got.timestamp <= time.time_ns() // 1000 + 1
    assert "Versioned(" in repr(got)


def test_kv_levels_and_history(db):
    run = db.runs.create({"agent": "a"})
    db.kv.set_in(run, "k", "in-run")
    assert db.kv.get("k") is None
    assert db.kv.get_in(run, "k").value == "in-run"
    assert db.kv.exists_in(run, "k") and not db.kv.exists("k")
    v1 = db.kv.put(run, "k", 1)
    v2 = db.kv.put(run, "k", 2)
    assert v2 > v1
    assert db.kv.get_at(run, "k", v1).value == 1
    assert [h.value for h in db.kv.history(run, "k")] == [2, 1, "in-run"]
    assert [h.value for h in db.kv.history(run, "k", limit=1, before=v2)] == [1]
    assert db.kv.incr(run, "n", 5) == 5 and db.kv.incr(run, "n") == 6
    assert db.kv.cas(run, "c", None, "first")
    assert not db.kv.cas(run, "c", None, "again")
    cur = db.kv.get_in(run, "c").version
    assert db.kv.cas(run, "c", cur, "second")
    vm = db.kv.mset(run, {"a": 1, "b": 2})
    assert db.kv.mset(run, [("c2", 3)]) > vm
    assert [x.value if x else None for x in db.kv.mget(run, ["a", "b", "zz"])] == [1, 2, None]
    assert db.kv.keys(run, "") == ["a", "b", "c", "c2", "k", "n"]
    assert db.kv.keys(run, "c", 1) == ["c"]
    assert db.kv.scan(run, "c") == [("c", "second"), ("c2", 3)]
    assert db.kv.mdelete(run, ["a", "b", "zz"]) == 2
    assert db.kv.delete_in(run, "k") and not db.kv.delete_in(run, "k")
    with pytest.raises(NotFoundError):
        db.kv.get_at(run, "never", v1)
    with pytest.raises(WrongTypeError):
        db.kv.incr(run, "c", 1)


def test_copy_and_delete_prefix(db):
    db.kv.mset(None, {"a/1": 1, "a/2": {"x": b"y"}, "b/1": 3})
    assert db.kv.copy_prefix(None, "a/", "z/") == 2
    assert db.kv.scan(None, "z/") == [("z/1", 1), ("z/2", {"x": b"y"})]
    assert db.kv.delete_prefix(None, "a/") == 2
    assert db.kv.keys(None) == ["b/1", "z/1", "z/2"]


def test_json(db):
    v = db.json.set("doc", {"name": "Alice", "tags": ["a"], "n": 1})
    assert db.json.get("doc").value["name"] == "Alice"
    assert db.json.get_path(None, "doc", "$.name").value == "Alice"
    db.json.set_path(None, "doc", "$.n", 2)
    db.json.merge(None, "doc", "$", {"extra": True, "tags": None})
    doc = db.json.get("doc").value
    assert doc == {"name": "Alice", "n": 2, "extra": True}
    assert db.json.delete_path(None, "doc", "$.extra") == 1
    assert db.json.get_at(None, "doc", v).value["n"] == 1
    assert len(db.json.history(None, "doc")) == 4
    assert db.json.keys(None) == ["doc"]
    assert db.json.exists(None, "doc") and db.json.delete(None, "doc")
    run = db.runs.create()
    db.json.set_in(run, "d", {"x": 1})
    assert db.json.get_in(run, "d").value == {"x": 1}


def test_events(db):
    assert db.events.append("log", {"i": 1}) == 1
    assert db.events.append("log", {"i": 2}) == 2
    evs = db.events.read("log", 10)
    assert [e.value["i"] for e in evs] == [1, 2]
    assert evs[0].version_kind == "sequence" and evs[1].version == 2
    run = db.runs.create()
    for i in range(5):
        db.events.append_in(run, "s", {"i": i})
    assert [e.value["i"] for e in db.events.range(run, "s", 2, 3)] == [1, 2]
    assert db.events.head(run, "s").value == {"i": 4}
    assert db.events.count(run, "s") == 5
    assert db.events.read_in(run, "s", 2)[1].value == {"i": 1}
    assert db.events.streams(run) == ["s"]
    with pytest.raises(WrongTypeError):
        db.events.append("log", "not an object")


def test_state(db):
    assert db.state.set("cell", "a") == 1
    assert db.state.get("cell").version_kind == "counter"
    assert db.state.cas(None, "cell", 1, "b") == 2
    assert db.state.cas(None, "cell", 1, "c") is None
    run = db.runs.create()
    db.state.set_in(run, "x", 1)
    assert db.state.get_in(run, "x").value == 1
    assert [h.value for h in db.state.history(None, "cell")] == ["b", "a"]
    assert db.state.exists(None, "cell") and db.state.delete(None, "cell")


def test_int8_collections_score_exactly(db):
    import math
    import random

    run = db.runs.default_run()
    db.vectors.create_collection(run, "q8", 8, "euclidean", quantization="int8")
    assert db.vectors.collection_info(run, "q8")["quantization"] == "int8"
    rng = random.Random(7)
    # Past the exact-search threshold (2,000), so searches walk the int8 graph.
    vecs = {f"v{i}": [rng.uniform(-1, 1) for _ in range(8)] for i in range(2100)}
    for k, v in vecs.items():
        db.vectors.upsert(run, "q8", k, v)
    query = [rng.uniform(-1, 1) for _ in range(8)]
    hits = db.vectors.search(run, "q8", query, 5)
    assert len(hits) == 5
    for h in hits:
        exact = 1.0 / (1.0 + math.dist(query, vecs[h.key]))
        assert h.score == pytest.approx(exact, rel=1e-5)
    assert db.vectors.search(run, "q8", vecs["v5"], 1)[0].key == "v5"
    with pytest.raises(ValueError, match="quantization"):
        db.vectors.create_collection(run, "bad", 4, quantization="int4")


def test_vectors_with_numpy_and_lists(db):
    np = pytest.importorskip("numpy")
    run = db.runs.default_run()
    db.vectors.create_collection(run, "emb", 3)
    db.vectors.upsert(run, "emb", "a", np.array([1, 0, 0], dtype=np.float32), {"kind": "x", "n": 1})
    db.vectors.upsert(run, "emb", "b", [0.0, 1.0, 0.0], {"kind": "y", "n": 2})
    # A non-contiguous view and a float64 array are accepted too (copied).
    db.vectors.upsert(run, "emb", "c", np.array([0, 0, 9, 9, 1, 1], dtype=np.float32)[::2], {"kind": "x", "n": 3})
    db.vectors.upsert(run, "emb", "d", np.array([1, 1, 0], dtype=np.float64))
    assert db.vectors.count(run, "emb") == 4
    hits = db.vectors.search(run, "emb", np.array([1, 0, 0], dtype=np.float32), 2)
    assert hits[0].key == "a" and hits[0].score == pytest.approx(1.0)
    assert hits[0].metadata == {"kind": "x", "n": 1}
    hits = db.vectors.search(run, "emb", [1, 0, 0], 10, filter={"kind": "x", "n": {"$gte": 2}})
    assert [h.key for h in hits] == ["c"]
    hits = db.vectors.search(run, "emb", [1, 0, 0], 10, filter={"$or": [{"n": 1}, {"n": {"$in": [2]}}]}, with_vectors=True)
    assert sorted(h.key for h in hits) == ["a", "b"] and hits[0].vector is not None
    got = db.vectors.get(run, "emb", "c")
    assert got.value["vector"] == [0.0, 9.0, 1.0]
    info = db.vectors.collection_info(run, "emb")
    assert info["dimension"] == 3 and info["metric"] == "cosine"
    assert info["quantization"] == "none"
    assert [c["name"] for c in db.vectors.list_collections(run)] == ["emb"]
    assert db.vectors.delete(run, "emb", "a")
    with pytest.raises(ConstraintViolationError):
        db.vectors.upsert(run, "emb", "bad", [1.0, 2.0])
    with pytest.raises(TypeError):
        db.vectors.upsert(run, "emb", "bad", "abc")
    with pytest.raises(ValueError, match="unknown filter operator"):
        db.vectors.search(run, "emb", [1, 0, 0], 1, filter={"n": {"$bogus": 1}})
    assert db.vectors.delete_collection(run, "emb")


def test_runs(db):
    run = db.runs.create({"owner": "me"})
    info = db.runs.get(run).value
    assert info["state"] == "active" and info["metadata"] == {"owner": "me"}
    assert db.runs.exists(run) and db.runs.is_active(run)
    db.runs.pause(run)
    with pytest.raises(RunError):
        db.kv.set_in(run, "k", 1)
    db.runs.resume(run)
    db.runs.update_metadata(run, {"owner": "you"})
    db.runs.set_retention(run, keep_last=2)
    assert db.runs.get_retention(run) == {"policy": "keep_last", "n": 2}
    db.runs.fail(run, "boom")
    assert db.runs.get(run).value["error"] == "boom"
    assert [r.value["run_id"] for r in db.runs.list(state="failed")] == [run]
    assert db.runs.list(limit=1)[0].value["run_id"] == db.runs.default_run()
    db.runs.archive(run)
    with pytest.raises(RunError):
        db.runs.resume(run)
    with pytest.raises(InvalidKeyError):
        db.kv.get_in("not-a-uuid", "k")
    assert db.runs.get(stratadb.Strata.ephemeral().runs.create()) is None


def test_fork_diff_and_purge(db):
    run = db.runs.create()
    v1 = db.kv.put(run, "plan", "draft")
    db.kv.put(run, "plan", "final")
    fork = db.runs.fork(run, at=v1)
    assert db.runs.get(fork).value["forked_from"] == {"parent": run, "version": v1}
    assert db.runs.get(run).value["forked_from"] is None
    assert db.kv.get_in(fork, "plan").value == "draft"
    db.kv.set_in(fork, "extra", 1)
    assert db.kv.get_in(run, "extra") is None
    changes = db.runs.diff_runs(run, fork)
    assert [(c["key"], c["kind"]) for c in changes] == [("extra", "added"), ("plan", "changed")]
    assert changes[1]["before"].value == "final" and changes[1]["after"].value == "draft"
    own = db.runs.diff(fork, v1)
    assert [(c["primitive"], c["key"], c["kind"]) for c in own] == [("kv", "extra", "added")]
    with pytest.raises(ConstraintViolationError):
        db.runs.fork(run, at=10**12)
    db.runs.purge(run)
    assert db.runs.get(run) is None
    with pytest.raises(RunError):
        db.kv.get_in(run, "plan")
    assert db.kv.get_in(fork, "plan").value == "draft"
    db.runs.purge(fork, with_forks=True)
    assert not db.runs.exists(fork)


def test_views_of_the_past_by_version_and_by_time(db):
    run = db.runs.create()
    v1 = db.kv.put(run, "plan", "draft")
    t1 = db.kv.get_in(run, "plan").timestamp
    time.sleep(0.002)
    db.kv.put(run, "plan", "final")
    time.sleep(0.002)
    db.json.set_in(run, "doc", {"step": 2})
    past = db.at(v1)
    assert past.version == v1 and past.time == t1
    assert past.kv.get_in(run, "plan").value == "draft"
    assert past.json.get_in(run, "doc") is None
    assert past.runs.exists(run)
    with pytest.raises(ConstraintViolationError):
        past.kv.set_in(run, "plan", "x")
    by_time = db.at_time(t1)
    assert by_time.version == v1 and by_time.time == t1
    assert by_time.kv.get_in(run, "plan").value == "draft"
    assert db.at_time(t1 + 1).kv.get_in(run, "plan").value == "draft"
    now = db.at_time(db.json.get_in(run, "doc").timestamp)
    assert now.kv.get_in(run, "plan").value == "final"
    assert now.json.get_in(run, "doc").value == {"step": 2}
    # The "final" write came before the document: a view at its time has no document.
    final = db.at_time(db.kv.get_in(run, "plan").timestamp)
    assert final.kv.get_in(run, "plan").value == "final"
    assert final.json.get_in(run, "doc") is None
    with pytest.raises(ConstraintViolationError):
        db.at_time(int(time.time() * 1e6) + 60_000_000)
    with pytest.raises(ConstraintViolationError):
        db.at(10**12)
    assert "View(version=" in repr(past)


def test_kv_time_to_live(db):
    run = db.runs.create()
    v = db.kv.put_with_ttl(run, "session", "token", 3600)
    assert db.kv.get_in(run, "session").version == v
    assert 3599 < db.kv.ttl(run, "session") <= 3600
    assert db.kv.expire(run, "session", None)
    assert db.kv.ttl(run, "session") is None
    assert db.kv.get_in(run, "session").version == v
    assert not db.kv.expire(run, "missing", 10)
    with pytest.raises(ValueError):
        db.kv.put_with_ttl(run, "k", 1, 0)
    db.kv.put_with_ttl(run, "short", 1, 0.05)
    time.sleep(0.1)
    assert db.kv.get_in(run, "short") is None
    assert db.runs.get(run).value["uses_ttl"] is True
    db.json.set_with_ttl(run, "doc", {"a": 1}, 3600)
    assert db.json.ttl(run, "doc") > 3599
    assert db.json.expire(run, "doc", None)
    assert db.json.ttl(run, "doc") is None


def test_exception_hierarchy():
    for cls in (NotFoundError, ConflictError, RunError, InvalidKeyError, WrongTypeError,
                ConstraintViolationError, ClosedError, stratadb.StorageError,
                stratadb.IoError, stratadb.SerializationError, stratadb.InternalError,
                stratadb.InvalidPathError):
        assert issubclass(cls, StrataError)
        assert cls.retryable is (cls is ConflictError)
    assert issubclass(StrataError, Exception)


def test_invalid_keys(db):
    with pytest.raises(InvalidKeyError):
        db.kv.set("", 1)
    with pytest.raises(InvalidKeyError):
        db.kv.set("a\x00b", 1)
    with pytest.raises(InvalidKeyError):
        db.kv.set("k" * (stratadb.MAX_KEY_BYTES + 1), 1)
    with pytest.raises(stratadb.InvalidPathError):
        db.json.set("d", {"a": 1})
        db.json.get_path(None, "d", "$[")


def test_transaction_across_primitives(db):
    run = db.runs.default_run()

    def work(txn):
        txn.events_append(run, "trace", {"tool": "search"})
        txn.state_set(run, "status", "done")
        txn.kv_set(None, "last", 3)
        txn.json_set(None, "doc", {"a": 1})
        assert txn.kv_get(None, "last").value == 3  # reads its own writes
        return "ok"

    assert db.transaction(work) == "ok"
    assert db.events.count(run, "trace") == 1
    assert db.state.get("status").value == "done"
    assert db.kv.get("last").value == 3
    assert db.metrics()["transactions_committed"] >= 1


def test_transaction_error_aborts(db):
    class Boom(Exception):
        pass

    def work(txn):
        txn.kv_set(None, "k", 1)
        raise Boom("no")

    with pytest.raises(Boom):
        db.transaction(work)
    assert db.kv.get("k") is None
    kept = []
    db.transaction(lambda txn: kept.append(txn))
    with pytest.raises(StrataError, match="finished"):
        kept[0].kv_set(None, "k", 1)


def test_close_inside_a_transaction_is_an_error_not_a_hang(db):
    def work(txn):
        db.close()

    with pytest.raises(StrataError, match="inside a transaction"):
        db.transaction(work)
    assert not db.closed


def test_transaction_retries_on_conflict(db):
    db.kv.set("n", 0)
    calls = []

    def work(txn):
        calls.append(1)
        n = txn.kv_get(None, "n").value
        if len(calls) == 1:
            db.kv.set("n", 100)  # a concurrent writer changes what we read
        txn.kv_set(None, "n", n + 1)

    db.transaction(work)
    assert len(calls) == 2
    assert db.kv.get("n").value == 101


def test_concurrent_increments_with_threads(db):
    db.kv.set("n", 0)

    def worker():
        for _ in range(200):
            db.transaction(lambda t: t.kv_set(None, "n", t.kv_get(None, "n").value + 1))

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert db.kv.get("n").value == 800


def test_gil_is_released(tmp_path):
    """A strict-durability commit waits for an fsync; other Python threads keep running
    meanwhile, and asyncio.to_thread calls overlap."""
    db = stratadb.Strata.builder().path(str(tmp_path / "s")).strict().open()
    stop = threading.Event()
    ticks = [0]

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    for i in range(50):
        db.kv.set(f"k{i}", i)
    stop.set()
    t.join()
    assert ticks[0] > 0

    async def main():
        await asyncio.gather(*(asyncio.to_thread(db.kv.set, f"a{i}", i) for i in range(32)))

    asyncio.run(main())
    assert db.kv.get("a31").value == 31
    db.close()


def test_context_manager_and_close(tmp_path):
    with stratadb.open(tmp_path / "db") as db:
        db.kv.set("k", "v")
        kv = db.kv
    assert db.closed
    with pytest.raises(ClosedError):
        kv.get("k")
    db.close()  # twice is fine
    with stratadb.open(tmp_path / "db", durability="strict") as db:
        assert db.kv.get("k").value == "v"
        assert db.path.endswith("db") and not db.is_ephemeral()
    with pytest.raises(ValueError):
        stratadb.open(tmp_path / "x", durability="sometimes")


def test_builder_modes(tmp_path):
    for b in (
        stratadb.Strata.builder().no_durability().path(str(tmp_path / "a")),
        stratadb.Strata.builder().buffered_with(10, 5).path(str(tmp_path / "b")),
        stratadb.StrataBuilder().strict().path(str(tmp_path / "c")),
    ):
        with b.open() as db:
            db.kv.set("k", 1)
        with b.open() as db:
            assert db.kv.get("k").value == 1
    with stratadb.Strata.builder().no_durability().open_temp() as db:
        db.kv.set("k", 1)
        db.flush()
    with pytest.raises(ConstraintViolationError):
        stratadb.Strata.builder().open()


def test_data_survives_a_new_process(tmp_path):
    path = str(tmp_path / "db")
    code = (
        "import stratadb, sys\n"
        "db = stratadb.open(sys.argv[1], durability='strict')\n"
        "db.kv.set('from', {'child': b'process'})\n"
        "db.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, path], check=True)
    with stratadb.open(path) as db:
        assert db.kv.get("from").value == {"child": b"process"}


def test_saver_from_many_threads(tmp_path):
    """Eight Python threads writing checkpoints at once (strict durability, so commits
    share fsyncs) lose nothing."""
    from langgraph.checkpoint.base import empty_checkpoint

    from stratadb.langgraph import StrataSaver

    db = stratadb.Strata.builder().path(str(tmp_path / "db")).strict().open()
    saver = StrataSaver(db)

    def worker(k):
        cfg = {"configurable": {"thread_id": f"t{k}", "checkpoint_ns": ""}}
        for i in range(20):
            cp = empty_checkpoint()
            cp["channel_values"] = {"i": i}
            cfg = saver.put(cfg, cp, {"step": i}, {})
            saver.put_writes(cfg, [("ch", i)], f"task{i}")

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for k in range(8):
        got = list(saver.list({"configurable": {"thread_id": f"t{k}"}}))
        assert len(got) == 20
        assert got[0].checkpoint["channel_values"] == {"i": 19}
        assert got[0].pending_writes == [("task19", "ch", 19)]
    db.close()


def test_copy_thread_into_a_thread_with_newer_checkpoints(db):
    from langgraph.checkpoint.base import empty_checkpoint

    from stratadb.langgraph import StrataSaver

    saver = StrataSaver(db)

    def put(thread, i):
        cp = empty_checkpoint()
        cp["channel_values"] = {"i": i}
        saver.put({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}, cp, {}, {})
        return cp["id"]

    put("src", 1)
    newest = put("dst", 2)  # newer than everything in src
    saver.copy_thread("src", "dst")
    latest = saver.get_tuple({"configurable": {"thread_id": "dst"}})
    assert latest.checkpoint["id"] == newest
    assert len(list(saver.list({"configurable": {"thread_id": "dst"}}))) == 2
