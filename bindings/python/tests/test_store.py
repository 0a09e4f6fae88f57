"""StrataStore against the BaseStore contract: put/get/delete, namespaces and
prefixes, filters, search with and without a query, pagination, list_namespaces with
match conditions and depth, TTL expiry and refresh (which must not create a version)."""

import asyncio
import hashlib
import time

import pytest
from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp, SearchOp

import stratadb
from stratadb.langgraph import StrataStore

WORDS = ["cat", "dog", "fish", "bird", "tree", "car", "boat", "plane"]
DIMS = len(WORDS)


def embed(texts):
    """A deterministic bag-of-words embedding: one dimension per known word."""
    out = []
    for t in texts:
        v = [float(t.lower().count(w)) for w in WORDS]
        if not any(v):
            v[int(hashlib.md5(t.encode()).hexdigest(), 16) % DIMS] = 0.1
        out.append(v)
    return out


@pytest.fixture
def store():
    db = stratadb.ephemeral()
    yield StrataStore(db)
    db.close()


@pytest.fixture
def istore():
    db = stratadb.ephemeral()
    yield StrataStore(db, index={"dims": DIMS, "embed": embed, "fields": ["text"]})
    db.close()


def test_put_get_delete(store):
    store.put(("users", "u1"), "prefs", {"theme": "dark", "n": 1, "raw": b"\x00"})
    item = store.get(("users", "u1"), "prefs")
    assert item.value == {"theme": "dark", "n": 1, "raw": b"\x00"}
    assert item.key == "prefs" and item.namespace == ("users", "u1")
    created = item.created_at
    time.sleep(0.01)
    store.put(("users", "u1"), "prefs", {"theme": "light"})
    item2 = store.get(("users", "u1"), "prefs")
    assert item2.value == {"theme": "light"}
    assert item2.created_at == created and item2.updated_at > item.updated_at
    assert store.get(("users", "u2"), "prefs") is None
    store.delete(("users", "u1"), "prefs")
    assert store.get(("users", "u1"), "prefs") is None


def test_values_the_engine_cannot_hold_use_the_serializer(store):
    import datetime

    when = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)
    store.put(("a",), "k", {"when": when, "n": 1})
    assert store.get(("a",), "k").value == {"when": when, "n": 1}


def test_invalid_namespaces(store):
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"x": 1})
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {"x": 1})
    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp(("a", ""), "k", {"x": 1})])


def test_batch_mixed_ops(store):
    res = store.batch(
        [
            PutOp(("docs",), "a", {"x": 1}),
            GetOp(("docs",), "a"),  # reads happen before the batch's puts
            PutOp(("docs",), "b", {"x": 2}),
        ]
    )
    assert res == [None, None, None]
    res = store.batch([GetOp(("docs",), "a"), SearchOp(("docs",), limit=10)])
    assert res[0].value == {"x": 1}
    assert sorted(i.key for i in res[1]) == ["a", "b"]


def test_search_prefix_filter_pagination(store):
    for i in range(10):
        store.put(("docs", "team" + str(i % 2)), f"d{i}", {"i": i, "kind": "even" if i % 2 == 0 else "odd", "meta": {"score": i / 10}})
    store.put(("docsx",), "other", {"i": 99})  # not under ("docs",)
    assert len(store.search(("docs",), limit=100)) == 10
    assert len(store.search(("docs", "team0"), limit=100)) == 5
    assert {i.value["kind"] for i in store.search(("docs",), filter={"kind": "odd"}, limit=100)} == {"odd"}
    got = store.search(("docs",), filter={"i": {"$gte": 3, "$lt": 6}}, limit=100)
    assert sorted(i.value["i"] for i in got) == [3, 4, 5]
    got = store.search(("docs",), filter={"kind": {"$ne": "odd"}, "meta": {"score": 0.4}}, limit=100)
    assert [i.value["i"] for i in got] == [4]
    page1 = store.search(("docs",), limit=4)
    page2 = store.search(("docs",), limit=4, offset=4)
    page3 = store.search(("docs",), limit=4, offset=8)
    keys = [i.key for i in page1 + page2 + page3]
    assert len(keys) == 10 and len(set(keys)) == 10
    assert all(i.score is None for i in page1)


def test_semantic_search(istore):
    istore.put(("mem", "u1"), "1", {"text": "the cat sat", "tag": "pet"})
    istore.put(("mem", "u1"), "2", {"text": "a dog barked", "tag": "pet"})
    istore.put(("mem", "u2"), "3", {"text": "my car is fast", "tag": "thing"})
    istore.put(("mem", "u1"), "4", {"text": "boat and plane", "tag": "thing"})
    istore.put(("mem", "u1"), "5", {"other": "no text field"}, index=False)
    hits = istore.search(("mem",), query="cat", limit=2)
    assert hits[0].key == "1" and hits[0].score == pytest.approx(1.0)
    hits = istore.search(("mem", "u2"), query="car", limit=5)
    assert [h.key for h in hits] == ["3"]
    hits = istore.search(("mem",), query="dog", filter={"tag": "pet"}, limit=5)
    assert hits[0].key == "2" and {h.value["tag"] for h in hits} == {"pet"}
    # Items without an embedding fill the page last, without a score.
    hits = istore.search(("mem", "u1"), query="plane", limit=10)
    assert hits[0].key == "4" and hits[-1].key == "5" and hits[-1].score is None
    # Re-putting changes the embedding; deleting removes it.
    istore.put(("mem", "u1"), "1", {"text": "a tree", "tag": "pet"})
    assert istore.search(("mem",), query="tree", limit=1)[0].key == "1"
    istore.delete(("mem", "u1"), "1")
    assert all(h.key != "1" for h in istore.search(("mem",), query="tree", limit=10))
    # Pagination over scored results.
    a = istore.search(("mem",), query="dog car boat", limit=2)
    b = istore.search(("mem",), query="dog car boat", limit=2, offset=2)
    assert not {h.key for h in a} & {h.key for h in b}


def test_semantic_search_per_put_fields(istore):
    istore.put(("m",), "x", {"title": "fish", "text": "car"}, index=["title"])
    assert istore.search(("m",), query="fish", limit=1)[0].key == "x"


def test_async_api(istore):
    async def main():
        await istore.aput(("a",), "k", {"text": "bird song"})
        assert (await istore.aget(("a",), "k")).value["text"] == "bird song"
        hits = await istore.asearch(("a",), query="bird")
        assert hits[0].key == "k"
        assert await istore.alist_namespaces() == [("a",)]
        await istore.adelete(("a",), "k")
        assert await istore.aget(("a",), "k") is None

    asyncio.run(main())


def test_list_namespaces(store):
    for ns in [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("b", "v1"), ("c", "d", "v1")]:
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces() == [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("b", "v1"), ("c", "d", "v1")]
    assert store.list_namespaces(prefix=("a",)) == [("a", "b", "c"), ("a", "b", "d"), ("a", "x")]
    assert store.list_namespaces(prefix=("a", "*", "d")) == [("a", "b", "d")]
    assert store.list_namespaces(suffix=("v1",)) == [("b", "v1"), ("c", "d", "v1")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("b",), ("c",)]
    assert store.list_namespaces(prefix=("a",), max_depth=2) == [("a", "b"), ("a", "x")]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d"), ("a", "x")]
    store.delete(("a", "x"), "k")
    assert ("a", "x") not in store.list_namespaces()


def test_ttl_expiry_and_refresh_without_new_version():
    db = stratadb.ephemeral()
    store = StrataStore(db, ttl={"default_ttl": 0.02, "refresh_on_read": True})  # 1.2 s
    store.put(("t",), "k", {"v": 1})
    store.put(("t",), "forever", {"v": 2}, ttl=None)
    key = "st:t.|k"
    version = db.kv.get(key).version
    time.sleep(0.7)
    assert store.get(("t",), "k").value == {"v": 1}  # refreshes the TTL
    assert db.kv.get(key).version == version, "a TTL refresh must not create a version"
    assert len(db.kv.history(None, key)) == 1
    time.sleep(0.7)  # 1.4 s after the put, 0.7 s after the refresh: still alive
    assert store.get(("t",), "k", refresh_ttl=False) is not None
    time.sleep(0.7)  # 1.4 s after the refresh, not refreshed since: expired
    assert store.get(("t",), "k") is None
    assert [i.key for i in store.search(("t",))] == ["forever"]
    assert store.list_namespaces() == [("t",)]
    assert store.sweep_ttl() == 1
    assert db.kv.get(key) is None
    assert store.get(("t",), "forever").value == {"v": 2}
    db.close()


def test_search_refreshes_ttl():
    db = stratadb.ephemeral()
    store = StrataStore(db, ttl={"refresh_on_read": True})
    store.put(("t",), "k", {"v": 1}, ttl=0.02)
    time.sleep(0.8)
    assert len(store.search(("t",))) == 1  # refresh
    time.sleep(0.8)
    assert len(store.search(("t",), refresh_ttl=False)) == 1
    time.sleep(0.6)
    assert store.search(("t",)) == []
    db.close()


def test_store_survives_reopen(tmp_path):
    with StrataStore.from_path(str(tmp_path / "db"), index={"dims": DIMS, "embed": embed, "fields": ["text"]}) as s:
        s.put(("m",), "k", {"text": "fish"})
    with StrataStore.from_path(str(tmp_path / "db"), index={"dims": DIMS, "embed": embed, "fields": ["text"]}) as s:
        assert s.get(("m",), "k").value == {"text": "fish"}
        assert s.search(("m",), query="fish")[0].key == "k"


def test_ttl_sweeper_thread():
    db = stratadb.ephemeral()
    store = StrataStore(db)
    store.put(("t",), "k", {"v": 1}, ttl=0.001)  # 60 ms
    store.start_ttl_sweeper(sweep_interval_minutes=0.002)  # every 120 ms
    deadline = time.time() + 5
    while db.kv.get("st:t.|k") is not None and time.time() < deadline:
        time.sleep(0.05)
    assert db.kv.get("st:t.|k") is None
    assert store.stop_ttl_sweeper(timeout=5)
    db.close()
