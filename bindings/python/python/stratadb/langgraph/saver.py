"""``StrataSaver``: a LangGraph checkpointer (``BaseCheckpointSaver``) on StrataDB.

Layout
------
Everything lives in the KV primitive of one StrataDB run (the default run unless
``run=`` is given), under these keys (components escaped by ``_keys.enc``; ``t`` is the
thread id, ``ns`` the checkpoint namespace, ``cid`` the checkpoint id, ``r`` the
LangGraph run id found in the checkpoint's metadata):

=======================================  ==============================================
key                                      value
=======================================  ==============================================
``lg:c/{t}/{ns}/{cid}``                  ``[type, checkpoint bytes, type, metadata
                                         bytes, parent cid or None]`` — the checkpoint
                                         with its channel values, serialized by the
                                         saver's ``serde``
``lg:h/{t}/{ns}``                        the newest ``cid`` of the namespace
``lg:w/{t}/{ns}/{cid}/{task}/{idx}``     ``[channel, type, bytes, task_path]`` — one
                                         pending write
``lg:r/{r}/{t}/{ns}/{cid}``              run index (for ``delete_for_runs``)
``lg:tr/{t}/{r}/{ns}/{cid}``             the same index by thread (for ``copy_thread``
                                         and ``delete_thread``)
=======================================  ==============================================

Checkpoint ids are UUIDv6 strings, so key order is time order. A checkpoint and its
index entries are written in one StrataDB transaction (``kv.mset``), so a crash never
leaves half a checkpoint; every durability mode of the database applies (``strict``
fsyncs every ``put``, with group commit across threads).

``copy_thread`` copies the thread's keys inside the engine in one transaction, without
converting values to Python. It is O(size of the thread); once StrataDB runs can be
forked (issue 14) a thread stored in its own run can be copied in O(1).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Optional

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

import stratadb

from ._keys import dec, enc

_C = "lg:c/"
_H = "lg:h/"
_W = "lg:w/"
_R = "lg:r/"
_TR = "lg:tr/"


class StrataSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer storing checkpoints and pending writes in StrataDB.

    ``db`` is an open :class:`stratadb.Strata`; or use :meth:`from_path`, which opens one
    and closes it when the saver is closed (``with StrataSaver.from_path(p) as saver:``).
    Every method has an async twin; the async writes run in a worker thread
    (``asyncio.to_thread``) so an fsync never blocks the event loop, the async reads run
    inline (they take microseconds and release the GIL).
    """

    def __init__(
        self,
        db: stratadb.Strata,
        *,
        serde: Optional[SerializerProtocol] = None,
        run: Optional[str] = None,
        owns_db: bool = False,
    ) -> None:
        super().__init__(serde=serde)
        self.db = db
        self.kv = db.kv
        self.run = run
        self._owns_db = owns_db

    @classmethod
    def from_path(
        cls, path: str, *, durability: str = "buffered", **kwargs: Any
    ) -> "StrataSaver":
        """Opens the database at ``path`` (see :func:`stratadb.open`) for a saver that
        closes it on :meth:`close`."""
        return cls(stratadb.open(path, durability=durability), owns_db=True, **kwargs)

    def close(self) -> None:
        """Closes the database if this saver opened it."""
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> "StrataSaver":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "StrataSaver":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    # ----- helpers -------------------------------------------------------------------

    def _tuple(
        self,
        t: str,
        ns: str,
        cid: str,
        rec: list,
        writes: list,
        config: Optional[RunnableConfig] = None,
    ) -> CheckpointTuple:
        ctype, cbytes, mtype, mbytes, parent = rec
        checkpoint = self.serde.loads_typed((ctype, cbytes))
        metadata = self.serde.loads_typed((mtype, mbytes))
        return CheckpointTuple(
            config=config
            or {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": cid}},
            checkpoint=checkpoint,
            metadata=metadata,
            parent_config=(
                {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": parent}}
                if parent
                else None
            ),
            pending_writes=self._decode_writes(writes),
        )

    def _decode_writes(self, writes: list) -> list:
        # writes: [(task_id, idx, [channel, type, bytes, task_path])]
        writes.sort(key=lambda w: (w[2][3], w[0], w[1]))
        return [(tid, v[0], self.serde.loads_typed((v[1], v[2]))) for tid, _, v in writes]

    @staticmethod
    def _parse_write_key(key: str, prefix_len: int) -> tuple[str, int]:
        task, idx = key[prefix_len:].split("/")
        return dec(task), int(idx)

    def _writes_of(self, t: str, ns: str, cid: str) -> list:
        p = f"{_W}{enc(t)}/{enc(ns)}/{cid}/"
        n = len(p)
        out = []
        for k, v in self.kv.scan(self.run, p):
            task, idx = self._parse_write_key(k, n)
            out.append((task, idx, v))
        return out

    def _refresh_head(self, t: str, ns: str) -> None:
        p = f"{_C}{enc(t)}/{enc(ns)}/"
        keys = self.kv.keys(self.run, p)
        if keys:
            self.kv.set_in(self.run, f"{_H}{enc(t)}/{enc(ns)}", keys[-1][len(p):])
        else:
            self.kv.delete_in(self.run, f"{_H}{enc(t)}/{enc(ns)}")

    # ----- BaseCheckpointSaver ---------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> Optional[CheckpointTuple]:
        conf = config["configurable"]
        t = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        cid = get_checkpoint_id(config)
        et, ens = enc(t), enc(ns)
        if cid:
            got = self.kv.get_in(self.run, f"{_C}{et}/{ens}/{cid}")
            if got is None:
                return None
            return self._tuple(t, ns, cid, got.value, self._writes_of(t, ns, cid), config)
        head = self.kv.get_in(self.run, f"{_H}{et}/{ens}")
        if head is None:
            return None
        cid = head.value
        got = self.kv.get_in(self.run, f"{_C}{et}/{ens}/{cid}")
        if got is None:
            return None
        return self._tuple(t, ns, cid, got.value, self._writes_of(t, ns, cid))

    def list(
        self,
        config: Optional[RunnableConfig],
        *,
        filter: Optional[dict[str, Any]] = None,
        before: Optional[RunnableConfig] = None,
        limit: Optional[int] = None,
    ) -> Iterator[CheckpointTuple]:
        if config is not None:
            conf = config["configurable"]
            t = conf.get("thread_id")
            ns = conf.get("checkpoint_ns")
            want_cid = get_checkpoint_id(config)
        else:
            t = ns = want_cid = None
        if t is None:
            prefix = _C
        elif ns is None:
            prefix = f"{_C}{enc(str(t))}/"
        else:
            prefix = f"{_C}{enc(str(t))}/{enc(ns)}/"
        before_cid = get_checkpoint_id(before) if before else None
        n = len(_C)
        selected = []
        for k in self.kv.keys(self.run, prefix):
            et, ens, cid = k[n:].split("/")
            if want_cid and cid != want_cid:
                continue
            if before_cid and cid >= before_cid:
                continue
            selected.append((cid, et, ens, k))
        selected.sort(reverse=True)
        if limit is not None and not filter:
            selected = selected[: max(limit, 0)]
        if not selected:
            return
        # Fetch records and their writes in chunks, so a long history is never all in
        # memory at once and a small limit reads little.
        chunk = 64 if limit is None or filter else min(max(limit, 1), 256)
        remaining = limit
        for i in range(0, len(selected), chunk):
            part = selected[i : i + chunk]
            recs = self.kv.mget(self.run, [k for _, _, _, k in part])
            rows = []
            for (cid, et, ens, _), rec in zip(part, recs):
                if rec is None:
                    continue
                if filter:
                    md = self.serde.loads_typed((rec.value[2], rec.value[3]))
                    if not all(md.get(fk) == fv for fk, fv in filter.items()):
                        continue
                rows.append((cid, et, ens, rec, f"{_W}{et}/{ens}/{cid}/"))
            # The pending writes of every kept checkpoint of the chunk, in one call.
            scans = self.kv.scan_prefixes(self.run, [r[4] for r in rows])
            for (cid, et, ens, rec, wprefix), found in zip(rows, scans):
                tt, nss = dec(et), dec(ens)
                n = len(wprefix)
                writes = []
                for k, v in found:
                    task, idx = self._parse_write_key(k, n)
                    writes.append((task, idx, v))
                yield self._tuple(tt, nss, cid, rec.value, writes)
                if remaining is not None:
                    remaining -= 1
                    if remaining <= 0:
                        return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        t = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        cid = checkpoint["id"]
        parent = conf.get("checkpoint_id")
        md = get_checkpoint_metadata(config, metadata)
        ctype, cbytes = self.serde.dumps_typed(checkpoint)
        mtype, mbytes = self.serde.dumps_typed(md)
        et, ens = enc(t), enc(ns)
        entries = [(f"{_C}{et}/{ens}/{cid}", [ctype, cbytes, mtype, mbytes, parent])]
        head_key = f"{_H}{et}/{ens}"
        head = self.kv.get_in(self.run, head_key)
        if head is None or head.value < cid:
            entries.append((head_key, cid))
        run_id = md.get("run_id")
        if run_id is not None:
            er = enc(str(run_id))
            entries.append((f"{_R}{er}/{et}/{ens}/{cid}", 1))
            entries.append((f"{_TR}{et}/{er}/{ens}/{cid}", 1))
        self.kv.mset(self.run, entries)
        return {"configurable": {"thread_id": t, "checkpoint_ns": ns, "checkpoint_id": cid}}

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        conf = config["configurable"]
        t = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        cid = conf["checkpoint_id"]
        base = f"{_W}{enc(t)}/{enc(ns)}/{cid}/{enc(task_id)}/"
        fixed = []  # special channels: always replaced
        regular = []  # regular channels: written only if absent
        for idx, (channel, value) in enumerate(writes):
            i = WRITES_IDX_MAP.get(channel, idx)
            vtype, vbytes = self.serde.dumps_typed(value)
            entry = (f"{base}{i}", [channel, vtype, vbytes, task_path])
            (regular if i >= 0 else fixed).append(entry)
        if regular:
            existing = self.kv.mget(self.run, [k for k, _ in regular])
            regular = [e for e, x in zip(regular, existing) if x is None]
        entries = fixed + regular
        if entries:
            self.kv.mset(self.run, entries)

    def delete_thread(self, thread_id: str) -> None:
        et = enc(str(thread_id))
        tp = f"{_TR}{et}/"
        n = len(tp)
        # The run-index entries of the thread, found through its thread-first index.
        stale = []
        for k in self.kv.keys(self.run, tp):
            er, rest = k[n:].split("/", 1)
            stale.append(f"{_R}{er}/{et}/{rest}")
        if stale:
            self.kv.mdelete(self.run, stale)
        for p in (_C, _W, _TR, _H):
            self.kv.delete_prefix(self.run, f"{p}{et}/")

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Deletes the checkpoints (and their writes) whose metadata ``run_id`` is one of
        ``run_ids`` (LangGraph run ids, not StrataDB runs)."""
        touched = set()
        for run_id in run_ids:
            er = enc(str(run_id))
            p = f"{_R}{er}/"
            n = len(p)
            doomed = []
            for k in self.kv.keys(self.run, p):
                et, ens, cid = k[n:].split("/")
                doomed += [k, f"{_C}{et}/{ens}/{cid}", f"{_TR}{et}/{er}/{ens}/{cid}"]
                self.kv.delete_prefix(self.run, f"{_W}{et}/{ens}/{cid}/")
                touched.add((et, ens))
            if doomed:
                self.kv.mdelete(self.run, doomed)
        for et, ens in touched:
            self._refresh_head(dec(et), dec(ens))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copies every checkpoint and pending write of a thread to another thread (in
        one transaction per key family, inside the engine)."""
        es, ed = enc(str(source_thread_id)), enc(str(target_thread_id))
        target_had_data = bool(self.kv.keys(self.run, f"{_C}{ed}/", 1))
        for p in (_C, _W, _H, _TR):
            self.kv.copy_prefix(self.run, f"{p}{es}/", f"{p}{ed}/")
        if target_had_data:
            # The copied head pointers may be older than the target's own checkpoints.
            n = len(f"{_C}{ed}/")
            for ens in {k[n:].split("/")[0] for k in self.kv.keys(self.run, f"{_C}{ed}/")}:
                self._refresh_head(str(target_thread_id), dec(ens))
        n = len(f"{_TR}{ed}/")
        entries = []
        for k in self.kv.keys(self.run, f"{_TR}{ed}/"):
            er, rest = k[n:].split("/", 1)
            entries.append((f"{_R}{er}/{ed}/{rest}", 1))
        if entries:
            self.kv.mset(self.run, entries)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"`` keeps the newest checkpoint of every namespace (with its
        writes); ``"delete"`` removes the threads entirely."""
        if strategy == "delete":
            for t in thread_ids:
                self.delete_thread(t)
            return
        if strategy != "keep_latest":
            raise ValueError(f"unknown prune strategy {strategy!r}")
        for t in thread_ids:
            et = enc(str(t))
            p = f"{_C}{et}/"
            n = len(p)
            by_ns: dict = defaultdict(list)
            for k in self.kv.keys(self.run, p):
                ens, cid = k[n:].split("/")
                by_ns[ens].append(cid)
            doomed = set()
            for ens, cids in by_ns.items():
                cids.sort()
                for cid in cids[:-1]:
                    doomed.add((ens, cid))
                    self.kv.delete_prefix(self.run, f"{_W}{et}/{ens}/{cid}/")
            if not doomed:
                continue
            keys = [f"{_C}{et}/{ens}/{cid}" for ens, cid in doomed]
            tp = f"{_TR}{et}/"
            m = len(tp)
            for k in self.kv.keys(self.run, tp):
                er, ens, cid = k[m:].split("/")
                if (ens, cid) in doomed:
                    keys += [k, f"{_R}{er}/{et}/{ens}/{cid}"]
            self.kv.mdelete(self.run, keys)

    # ----- async twins -----------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> Optional[CheckpointTuple]:
        return self.get_tuple(config)

    async def alist(
        self,
        config: Optional[RunnableConfig],
        *,
        filter: Optional[dict[str, Any]] = None,
        before: Optional[RunnableConfig] = None,
        limit: Optional[int] = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)
