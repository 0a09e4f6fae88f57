"""Findings of a probe of the bindings as a user: each test failed before its fix."""

import threading
import time

import pytest

import stratadb
from stratadb import ClosedError, ConstraintViolationError
from stratadb.langgraph import StrataStore


def test_a_filter_nested_past_the_limit_is_refused_not_a_crash():
    db = stratadb.ephemeral()
    db.vectors.create_collection(None, "c", 2)
    db.vectors.upsert(None, "c", "a", [1.0, 0.0], {"x": 1})
    f = {"x": 1}
    for _ in range(30_000):  # overflowed the converter's stack (a segfault) before
        f = {"$not": f}
    with pytest.raises(ConstraintViolationError, match="128 levels"):
        db.vectors.search(None, "c", [1.0, 0.0], 1, filter=f)
    g = {"x": 1}
    for _ in range(60):  # 120 levels and the `$and`: within the limit
        g = {"$not": {"$not": g}}
    assert [m.key for m in db.vectors.search(None, "c", [1.0, 0.0], 1, filter={"$and": [g]})] == ["a"]
    db.close()


def test_a_retention_too_long_for_a_duration_is_a_value_error():
    db = stratadb.ephemeral()
    run = db.runs.create()
    with pytest.raises(ValueError):  # a Rust panic (PanicException) before
        db.runs.set_retention(run, keep_for_seconds=1e20)
    db.runs.set_retention(run, keep_for_seconds=3600.0)
    db.close()


def test_close_is_not_held_off_by_threads_that_keep_calling():
    db = stratadb.ephemeral()
    db.kv.set("k", 1)
    stop = threading.Event()
    closed_seen = []

    def reader():
        while not stop.is_set():
            try:
                db.kv.get("k")
            except ClosedError:
                closed_seen.append(1)
                return

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    started = time.monotonic()
    db.close()  # waited for as long as the readers ran before
    took = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join(10)
    assert took < 5, f"close took {took:.1f} s"
    assert db.closed
    assert len(closed_seen) == 3
    with pytest.raises(ClosedError):
        db.kv.get("k")


def test_a_threshold_search_returns_vectors_when_asked():
    db = stratadb.ephemeral()
    db.vectors.create_collection(None, "c", 2)
    db.vectors.upsert(None, "c", "a", [1.0, 0.0])
    db.vectors.upsert(None, "c", "b", [0.0, 1.0])
    hits = db.vectors.search(None, "c", [1.0, 0.1], 5, threshold=0.5, with_vectors=True)
    assert [h.key for h in hits] == ["a"]
    assert hits[0].vector == pytest.approx([1.0, 0.0])
    with pytest.raises(ConstraintViolationError):
        db.vectors.search(None, "c", [1.0, 0.1], 5, threshold=float("nan"), with_vectors=True)
    with pytest.raises(ConstraintViolationError):
        db.vectors.search(None, "c", [1.0, 0.1], 5, threshold=float("nan"))
    db.close()


def test_store_items_whose_labels_hold_the_separator_do_not_share_a_key():
    db = stratadb.ephemeral()
    s = StrataStore(db)
    s.put(("a",), "b.|c", {"owner": 1})
    s.put(("a", "|b"), "c", {"owner": 2})
    s.put(("a", "\x01p"), "c", {"owner": 3})
    s.put(("a", "|"), "c", {"owner": 4})
    first = s.get(("a",), "b.|c")
    assert first is not None and first.value == {"owner": 1} and tuple(first.namespace) == ("a",)
    assert s.get(("a", "|b"), "c").value == {"owner": 2}
    assert s.get(("a", "\x01p"), "c").value == {"owner": 3}
    assert s.get(("a", "|"), "c").value == {"owner": 4}
    assert len(s.search(("a",), limit=10)) == 4
    assert [i.key for i in s.search(("a", "|b"))] == ["c"]
    assert sorted(s.list_namespaces(prefix=("a",))) == [("a",), ("a", "\x01p"), ("a", "|"), ("a", "|b")]
    db.close()


def test_dicts_read_back_the_same_way_every_time():
    db = stratadb.ephemeral()
    value = {"z": 1, "y": {"b": 2, "a": 3}, "x": [{"d": 4, "c": 5}], "w": 4}
    db.kv.set("k", value)
    reads = [db.kv.get("k").value for _ in range(20)]
    assert all(r == value for r in reads)
    # The key order varied from one read to the next before: now it is sorted.
    assert {tuple(r) for r in reads} == {("w", "x", "y", "z")}
    assert {tuple(r["y"]) for r in reads} == {("a", "b")}
    assert {tuple(r["x"][0]) for r in reads} == {("c", "d")}
    db.close()


def test_filter_mistakes_are_errors_not_silent_mismatches():
    db = stratadb.ephemeral()
    db.vectors.create_collection(None, "c", 2)
    db.vectors.upsert(None, "c", "a", [1.0, 0.0], {"n": 2})
    with pytest.raises(ValueError, match="unknown filter operator"):
        db.vectors.search(None, "c", [1.0, 0.0], 1, filter={"$nor": [{"n": 2}]})
    with pytest.raises(ValueError, match="mixes operators"):
        db.vectors.search(None, "c", [1.0, 0.0], 1, filter={"n": {"$gt": 1, "x": 2}})
    assert [m.key for m in db.vectors.search(None, "c", [1.0, 0.0], 1, filter={"n": {"$gt": 1}})] == ["a"]
    db.close()


def test_bytes_and_strings_are_not_vectors():
    db = stratadb.ephemeral()
    db.vectors.create_collection(None, "c", 3)
    for bad in (b"abc", bytearray(b"abc"), "abc"):
        with pytest.raises(TypeError, match="a vector must be"):
            db.vectors.upsert(None, "c", "a", bad)
    db.close()


def test_an_async_transaction_function_is_refused():
    db = stratadb.ephemeral()

    async def write(txn):
        txn.kv_set(None, "k", 1)

    with pytest.raises(TypeError, match="awaitable"):
        db.transaction(write)
    assert db.kv.get("k") is None
    db.close()


def test_numpy_scalars_are_stored_as_the_numbers_they_stand_for():
    np = pytest.importorskip("numpy")
    db = stratadb.ephemeral()
    value = {"i": np.int64(7), "f": np.float32(0.5), "b": np.bool_(True), "u": np.uint8(3), "l": [np.int32(-1)]}
    db.kv.set("k", value)
    got = db.kv.get("k").value
    assert got == {"b": True, "f": 0.5, "i": 7, "l": [-1], "u": 3}
    assert type(got["i"]) is int and type(got["b"]) is bool and type(got["f"]) is float
    with pytest.raises(TypeError):
        db.kv.set("a", np.array([1, 2]))  # arrays are not scalars: still refused
    db.close()
