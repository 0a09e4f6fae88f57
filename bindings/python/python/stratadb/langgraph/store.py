"""``StrataStore``: LangGraph long-term memory (``BaseStore``) on StrataDB.

Layout
------
In the KV primitive of one StrataDB run (the default run unless ``run=`` is given); a
namespace ``(a, b)`` is written ``a.b.`` (LangGraph forbids ``.`` in labels, so this is
unambiguous and a namespace prefix is a key prefix), with a ``|`` inside a label written
``\x01p`` (and ``\x01`` as ``\x01\x01``) so that the ``|`` after the namespace is the
first one in the key. (Before that escape, items under labels holding ``|`` could
share a key with another item; such items written by an earlier version are not found
under their namespace any more.)

==========================  =========================================================
key                         value
==========================  =========================================================
``st:{ns}|{key}``           ``{"ns": [...], "k": key, "v": value, "c": created,
                            "u": updated, "ttl": minutes or None, "nv": vectors}``
``sx:{ns}|{key}``           expiry time (seconds since the epoch) of an item with a TTL
==========================  =========================================================

Values are stored as StrataDB values (exact ``dict``/``list``/``str``/``int``/
``float``/``bool``/``bytes``/``None``); anything else is serialized with LangGraph's
serializer. The expiry lives in its own key, so refreshing a TTL on read rewrites only
that key: the item keeps its version and ``updated_at``.

Natural-language search uses the user's embedding function (``index={"dims": n,
"embed": fn, "fields": [...]}``, as for LangGraph's own stores) and a StrataDB vector
collection (``langgraph_store``, cosine) holding one vector per embedded field, keyed
``{item key}#{i}``, with the namespace labels as metadata (``n0``, ``n1``…), so a
namespace prefix is an indexed metadata filter.

A put writes the item, its expiry and its vectors in one StrataDB transaction, so a
crash or a concurrent writer never leaves an item without its vectors (or the reverse).
Expired items are never returned; ``sweep_ttl()`` (or the thread started by
``start_ttl_sweeper()``) deletes them, each in a transaction that checks the expiry
again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Optional

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)

try:  # langgraph-checkpoint >= 3
    from langgraph.store.base import validate_op_namespace
except ImportError:  # pragma: no cover
    def validate_op_namespace(op: Op) -> None:  # type: ignore[misc]
        return None

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

import stratadb

logger = logging.getLogger(__name__)

_ITEM = "st:"
_EXP = "sx:"
_COLLECTION = "langgraph_store"


def _label(label: str) -> str:
    """A namespace label as written in keys: ``.`` ends a label (LangGraph forbids it in
    labels) and ``|`` ends the namespace, so a ``|`` inside a label is escaped
    (``\x01p``, with ``\x01`` itself doubled). Without it the item ``("a",)`` / ``"b.|c"``
    and the item ``("a", "|b")`` / ``"c"`` shared one key and overwrote each other."""
    if "|" in label or "\x01" in label:
        return label.replace("\x01", "\x01\x01").replace("|", "\x01p")
    return label


def _ns_key(ns: tuple[str, ...]) -> str:
    return "".join(_label(label) + "." for label in ns)


def _item_key(ns: tuple[str, ...], key: str) -> str:
    return f"{_ITEM}{_ns_key(ns)}|{key}"


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _matches(cond: MatchCondition, ns: tuple[str, ...]) -> bool:
    path = tuple(cond.path)
    if len(ns) < len(path):
        return False
    pairs = zip(ns, path) if cond.match_type == "prefix" else zip(reversed(ns), reversed(path))
    if cond.match_type not in ("prefix", "suffix"):
        raise ValueError(f"unsupported match type {cond.match_type!r}")
    return all(p == "*" or n == p for n, p in pairs)


def _compare(item_value: Any, want: Any) -> bool:
    if isinstance(want, dict):
        if any(k.startswith("$") for k in want):
            return all(_apply_op(item_value, op, x) for op, x in want.items())
        if not isinstance(item_value, dict):
            return False
        return all(_compare(item_value.get(k), v) for k, v in want.items())
    if isinstance(want, (list, tuple)):
        return (
            isinstance(item_value, (list, tuple))
            and len(item_value) == len(want)
            and all(_compare(a, b) for a, b in zip(item_value, want))
        )
    return item_value == want


def _apply_op(value: Any, op: str, x: Any) -> bool:
    if op == "$eq":
        return value == x
    if op == "$ne":
        return value != x
    if value is None:
        return False
    if op == "$gt":
        return float(value) > float(x)
    if op == "$gte":
        return float(value) >= float(x)
    if op == "$lt":
        return float(value) < float(x)
    if op == "$lte":
        return float(value) <= float(x)
    raise ValueError(f"unsupported operator {op!r}")


class StrataStore(BaseStore):
    """LangGraph ``BaseStore`` on StrataDB: get/put/delete, namespaces, filtered and
    semantic search, ``list_namespaces``, and TTL with refresh on read.

    ``index`` configures semantic search exactly as for LangGraph's stores (``dims``,
    ``embed`` — a LangChain ``Embeddings`` or a function from a list of texts to a list
    of vectors —, and ``fields``). ``ttl`` is a ``TTLConfig`` (``default_ttl`` in
    minutes, ``refresh_on_read``); call :meth:`sweep_ttl` to delete expired items
    (expired items are never returned, swept or not).
    """

    supports_ttl: bool = True

    def __init__(
        self,
        db: stratadb.Strata,
        *,
        index: Optional[IndexConfig] = None,
        ttl: Optional[TTLConfig] = None,
        run: Optional[str] = None,
        owns_db: bool = False,
    ) -> None:
        self.db = db
        self.kv = db.kv
        self.run = run
        self.ttl_config = ttl
        self._owns_db = owns_db
        self._serde = JsonPlusSerializer()
        self._sweeper: Optional[threading.Thread] = None
        self._sweeper_stop = threading.Event()
        self.index_config = dict(index) if index else None
        self.embeddings = None
        if self.index_config:
            self.embeddings = ensure_embeddings(self.index_config.get("embed"))
            self.index_config["__tokenized_fields"] = [
                (p, tokenize_path(p)) if p != "$" else (p, p)
                for p in (self.index_config.get("fields") or ["$"])
            ]
            info = db.vectors.collection_info(run, _COLLECTION)
            if info is None:
                db.vectors.create_collection(run, _COLLECTION, int(self.index_config["dims"]), "cosine")
            elif info["dimension"] != int(self.index_config["dims"]):
                raise ValueError(
                    f"the store's vector collection has dimension {info['dimension']}, "
                    f"not {self.index_config['dims']}"
                )

    @classmethod
    def from_path(cls, path: str, *, durability: str = "buffered", **kwargs: Any) -> "StrataStore":
        """Opens the database at ``path`` for a store that closes it on :meth:`close`."""
        return cls(stratadb.open(path, durability=durability), owns_db=True, **kwargs)

    def close(self) -> None:
        """Stops the TTL sweeper and closes the database if this store opened it."""
        self.stop_ttl_sweeper()
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> "StrataStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----- values ----------------------------------------------------------------------

    def _record_value(self, rec: dict) -> dict:
        if "j" in rec["v"]:
            return rec["v"]["j"]
        t, b = rec["v"]["s"]
        return self._serde.loads_typed((t, b))

    def _item(self, rec: dict, cls: type = Item, **extra: Any) -> Any:
        return cls(
            namespace=tuple(rec["ns"]),
            key=rec["k"],
            value=self._record_value(rec),
            created_at=_dt(rec["c"]),
            updated_at=_dt(rec["u"]),
            **extra,
        )

    # ----- batch -----------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        queries = {
            op.query
            for op in ops
            if isinstance(op, SearchOp) and op.query and self.embeddings is not None
        }
        qvecs = {q: self.embeddings.embed_query(q) for q in queries} if queries else {}
        return self._run_ops(ops, qvecs, self._embed_sync)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        queries = list(
            {
                op.query
                for op in ops
                if isinstance(op, SearchOp) and op.query and self.embeddings is not None
            }
        )
        qvecs = {}
        if queries:
            vecs = await asyncio.gather(*(self.embeddings.aembed_query(q) for q in queries))
            qvecs = dict(zip(queries, vecs))
        texts = self._texts_to_embed(ops)
        vectors = (
            await self.embeddings.aembed_documents([t for t, _ in texts])
            if texts and self.embeddings is not None
            else []
        )
        pre = {id(op): [] for op in ops if isinstance(op, PutOp)}
        for (_, (op, field)), v in zip(texts, vectors):
            pre[id(op)].append((field, v))
        return await asyncio.to_thread(self._run_ops, ops, qvecs, lambda puts: pre)

    def _texts_to_embed(self, ops: list) -> list:
        if not self.index_config or self.embeddings is None:
            return []
        out = []
        for op in ops:
            if not isinstance(op, PutOp) or op.value is None or op.index is False:
                continue
            if op.index is None:
                paths = self.index_config["__tokenized_fields"]
            else:
                paths = [(p, tokenize_path(p)) for p in op.index]
            for path, field in paths:
                for text in get_text_at_path(op.value, field):
                    out.append((text, (op, path)))
        return out

    def _embed_sync(self, ops: list) -> dict:
        texts = self._texts_to_embed(ops)
        pre: dict = {id(op): [] for op in ops if isinstance(op, PutOp)}
        if texts:
            vectors = self.embeddings.embed_documents([t for t, _ in texts])
            for (_, (op, field)), v in zip(texts, vectors):
                pre[id(op)].append((field, v))
        return pre

    def _run_ops(self, ops: list, qvecs: dict, embed: Any) -> list[Result]:
        for op in ops:
            validate_op_namespace(op)
        # Puts are applied after the reads of the batch, last put per item wins (as in
        # LangGraph's stores); their embeddings are computed first.
        puts: dict = {}
        for op in ops:
            if isinstance(op, PutOp):
                puts[(tuple(op.namespace), op.key)] = op
        last_puts = list(puts.values())
        vectors = embed(last_puts) if last_puts else {}
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op, qvecs.get(op.query) if op.query else None))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            elif isinstance(op, PutOp):
                results.append(None)
            else:
                raise ValueError(f"unknown operation {type(op).__name__}")
        for op in last_puts:
            self._put(op, vectors.get(id(op), []))
        return results

    # ----- operations ------------------------------------------------------------------

    @staticmethod
    def _refresh(op_refresh: Optional[bool]) -> bool:
        # BaseStore.get/search already resolved the default from ttl_config.
        return op_refresh is not False

    def _get(self, op: GetOp) -> Optional[Item]:
        k = _item_key(tuple(op.namespace), op.key)
        rec, exp = self.kv.mget(self.run, [k, _EXP + k[len(_ITEM):]])
        if rec is None:
            return None
        now = time.time()
        if exp is not None and exp.value <= now:
            return None
        r = rec.value
        if exp is not None and r.get("ttl") and self._refresh(op.refresh_ttl):
            self.kv.set_in(self.run, _EXP + k[len(_ITEM):], now + r["ttl"] * 60.0)
        return self._item(r)

    def _put(self, op: PutOp, vectors: list) -> None:
        """Writes (or deletes) an item, its expiry and its vectors in one transaction."""
        ns = tuple(op.namespace)
        k = _item_key(ns, op.key)
        ek = _EXP + k[len(_ITEM):]
        run = self.run
        ttl = op.ttl if isinstance(op.ttl, (int, float)) and not isinstance(op.ttl, bool) else None
        now = time.time()
        meta = {f"n{i}": label for i, label in enumerate(ns)}
        meta["depth"] = len(ns)
        stored: dict = {"j": dict(op.value)} if op.value is not None else {}

        def work(txn: stratadb.Txn) -> None:
            old = txn.kv_get(run, k)
            old_nv = old.value.get("nv", 0) if old is not None else 0
            if op.value is None:
                txn.kv_delete(run, k)
                txn.kv_delete(run, ek)
                keep = 0
            else:
                rec = {
                    "ns": list(ns),
                    "k": op.key,
                    "v": stored,
                    "c": old.value["c"] if old is not None else now,
                    "u": now,
                    "ttl": ttl,
                    "nv": len(vectors),
                }
                txn.kv_set(run, k, rec)
                if ttl:
                    txn.kv_set(run, ek, now + ttl * 60.0)
                elif old is not None and old.value.get("ttl"):
                    txn.kv_delete(run, ek)
                for i, (_, vec) in enumerate(vectors):
                    txn.vector_upsert(run, _COLLECTION, f"{k}#{i}", vec, meta)
                keep = len(vectors)
            if self.index_config:
                for i in range(keep, old_nv):
                    txn.vector_delete(run, _COLLECTION, f"{k}#{i}")

        try:
            self.db.transaction(work)
        except (TypeError, OverflowError):
            # Not representable as a StrataDB value: use LangGraph's serializer.
            stored.clear()
            stored["s"] = list(self._serde.dumps_typed(dict(op.value)))
            self.db.transaction(work)

    def _live(self, prefix: str) -> tuple[list, dict]:
        """Records under an item-key prefix, without the expired ones."""
        recs = self.kv.scan(self.run, prefix)
        exps = dict(self.kv.scan(self.run, _EXP + prefix[len(_ITEM):]))
        now = time.time()
        live = []
        for k, r in recs:
            e = exps.get(_EXP + k[len(_ITEM):])
            if e is not None and e <= now:
                continue
            live.append((k, r))
        return live, exps

    def _search(self, op: SearchOp, qvec: Optional[list]) -> list[SearchItem]:
        prefix = _ITEM + _ns_key(tuple(op.namespace_prefix))
        limit, offset = op.limit, op.offset
        if qvec is None:
            live, exps = self._live(prefix)
            out = []
            matched = 0
            for k, r in live:
                if op.filter and not all(
                    _compare(self._record_value(r).get(fk), fv) for fk, fv in op.filter.items()
                ):
                    continue
                matched += 1
                if matched <= offset:
                    continue
                out.append((k, r))
                if len(out) >= limit:
                    break
            self._refresh_many(out, exps, op.refresh_ttl)
            return [self._item(r, SearchItem) for _, r in out]
        return self._semantic(op, qvec, prefix)

    def _semantic(self, op: SearchOp, qvec: list, prefix: str) -> list[SearchItem]:
        ns = tuple(op.namespace_prefix)
        vfilter = {f"n{i}": label for i, label in enumerate(ns)} or None
        want = op.offset + op.limit
        k = max(want * 2, 10)
        while True:
            hits = self.db.vectors.search(self.run, _COLLECTION, qvec, k, vfilter)
            best: dict = {}
            for h in hits:
                item_key = h.key.rsplit("#", 1)[0]
                if item_key not in best or h.score > best[item_key]:
                    best[item_key] = h.score
            keys = list(best)
            recs = self.kv.mget(self.run, keys)
            exps = self.kv.mget(self.run, [_EXP + x[len(_ITEM):] for x in keys])
            now = time.time()
            scored = []
            for key, rec, exp in zip(keys, recs, exps):
                if rec is None or (exp is not None and exp.value <= now):
                    continue
                r = rec.value
                if op.filter and not all(
                    _compare(self._record_value(r).get(fk), fv) for fk, fv in op.filter.items()
                ):
                    continue
                scored.append((best[key], key, r))
            if len(scored) >= want or len(hits) < k:
                break
            k *= 4
        scored.sort(key=lambda x: -x[0])
        page = scored[op.offset : op.offset + op.limit]
        out = [self._item(r, SearchItem, score=float(s)) for s, _, r in page]
        if len(out) < op.limit:
            # Items without an embedding come last, without a score (as LangGraph does).
            seen = {key for _, key, _ in scored}
            live, _ = self._live(prefix)
            for key, r in live:
                if len(out) >= op.limit:
                    break
                if key in seen or r.get("nv"):
                    continue
                if op.filter and not all(
                    _compare(self._record_value(r).get(fk), fv) for fk, fv in op.filter.items()
                ):
                    continue
                out.append(self._item(r, SearchItem, score=None))
        exps_d = {}
        refresh = [(_item_key(i.namespace, i.key), None) for i in out]
        if refresh and self._refresh(op.refresh_ttl):
            ek = [_EXP + x[len(_ITEM):] for x, _ in refresh]
            for x, e in zip(ek, self.kv.mget(self.run, ek)):
                if e is not None:
                    exps_d[x] = e.value
            recs = self.kv.mget(self.run, [x for x, _ in refresh])
            self._refresh_many(
                [(x, r.value) for (x, _), r in zip(refresh, recs) if r is not None], exps_d, True
            )
        return out

    def _refresh_many(self, items: list, exps: dict, op_refresh: Optional[bool]) -> None:
        if not self._refresh(op_refresh):
            return
        now = time.time()
        entries = [
            (_EXP + k[len(_ITEM):], now + r["ttl"] * 60.0)
            for k, r in items
            if r.get("ttl") and (_EXP + k[len(_ITEM):]) in exps
        ]
        if entries:
            self.kv.mset(self.run, entries)

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        prefix = _ITEM
        conds = op.match_conditions or ()
        for c in conds:
            if c.match_type == "prefix" and "*" not in c.path:
                prefix = _ITEM + _ns_key(tuple(c.path))
                break
        live, _ = self._live(prefix)
        seen = set()
        for _, r in live:
            ns = tuple(r["ns"])
            if all(_matches(c, ns) for c in conds):
                seen.add(ns[: op.max_depth] if op.max_depth is not None else ns)
        return sorted(seen)[op.offset : op.offset + op.limit]

    def sweep_ttl(self) -> int:
        """Deletes every expired item (and its vectors); returns how many. Each item is
        checked again and deleted in its own transaction, so an item whose TTL a
        concurrent read just refreshed is kept."""
        now = time.time()
        run = self.run
        n = 0
        for ek, e in self.kv.scan(run, _EXP):
            if e > now:
                continue
            k = _ITEM + ek[len(_EXP):]

            def work(txn: stratadb.Txn) -> bool:
                exp = txn.kv_get(run, ek)
                if exp is None or exp.value > now:
                    return False
                rec = txn.kv_get(run, k)
                txn.kv_delete(run, ek)
                if rec is None:
                    return False
                txn.kv_delete(run, k)
                if self.index_config:
                    for i in range(rec.value.get("nv", 0)):
                        txn.vector_delete(run, _COLLECTION, f"{k}#{i}")
                return True

            n += bool(self.db.transaction(work))
        return n

    def start_ttl_sweeper(self, sweep_interval_minutes: Optional[float] = None) -> None:
        """Starts a daemon thread calling :meth:`sweep_ttl` every
        ``sweep_interval_minutes`` (default: the TTL config's, else 5 minutes)."""
        if self._sweeper is not None:
            return
        interval = sweep_interval_minutes
        if interval is None and self.ttl_config:
            interval = self.ttl_config.get("sweep_interval_minutes")
        seconds = float(interval if interval is not None else 5) * 60.0
        self._sweeper_stop.clear()

        def loop() -> None:
            while not self._sweeper_stop.wait(seconds):
                try:
                    self.sweep_ttl()
                except stratadb.ClosedError:
                    return
                except Exception:  # keep sweeping; the next round retries
                    logger.exception("TTL sweep failed")

        self._sweeper = threading.Thread(target=loop, name="strata-store-ttl", daemon=True)
        self._sweeper.start()

    def stop_ttl_sweeper(self, timeout: Optional[float] = None) -> bool:
        """Stops the sweeper thread; returns whether it has stopped."""
        if self._sweeper is None:
            return True
        self._sweeper_stop.set()
        self._sweeper.join(timeout)
        stopped = not self._sweeper.is_alive()
        if stopped:
            self._sweeper = None
        return stopped

    async def asweep_ttl(self) -> int:
        """Async :meth:`sweep_ttl`."""
        return await asyncio.to_thread(self.sweep_ttl)
