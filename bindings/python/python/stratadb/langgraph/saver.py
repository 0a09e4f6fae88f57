"""``StrataSaver``: a LangGraph checkpointer (``BaseCheckpointSaver``) on StrataDB.

Layout
------
Every LangGraph thread lives in a StrataDB run of its own, so that copying a thread is a
run fork: O(1), whatever the thread holds. A *catalog* run (the default run unless
``run=`` is given) maps thread ids to their runs:

=======================================  ==============================================
key (catalog run)                        value
=======================================  ==============================================
``lg:t/{t}``                             the id of thread ``t``'s run
=======================================  ==============================================

and each thread's run holds, in its KV primitive (components escaped by ``_keys.enc``;
``ns`` is the checkpoint namespace, ``cid`` the checkpoint id, ``r`` the LangGraph run
id found in the checkpoint's metadata):

=======================================  ==============================================
key (thread run)                         value
=======================================  ==============================================
``c/{ns}/{cid}``                         ``[type, checkpoint bytes, type, metadata
                                         bytes, parent cid or None]`` — the checkpoint
                                         with its channel values, serialized by the
                                         saver's ``serde``
``h/{ns}``                               the newest ``cid`` of the namespace
``w/{ns}/{cid}/{task}/{idx}``            ``[channel, type, bytes, task_path]`` — one
                                         pending write
``r/{r}/{ns}/{cid}``                     run index (for ``delete_for_runs``)
=======================================  ==============================================

Checkpoint ids are UUIDv6 strings, so key order is time order. A checkpoint and its
index entries are written in one StrataDB transaction (``kv.mset``), so a crash never
leaves half a checkpoint; every durability mode of the database applies (``strict``
fsyncs every ``put``, with group commit across threads).

Operations and their cost:

- ``copy_thread(src, dst)`` into a thread that does not exist yet forks ``src``'s run
  (``db.runs.fork``) and points ``dst`` at the fork: constant time, no data copied. The
  two threads then diverge. A read goes through one level per fork, so past 16 copies
  of copies the keys are copied into a fresh run instead. Into a thread that already
  has checkpoints it merges ``src``'s keys into ``dst``'s run (O(size of ``src``)).
- ``delete_thread`` hard-purges the thread's run (``db.runs.purge``) and then removes its
  catalog entry; copies made earlier keep what they saw. A crash between the two leaves
  a catalog entry naming a run that no longer exists, which reads as "no such thread"
  and is replaced by the next ``put``.
- ``delete_for_runs`` and ``list`` without a thread id visit every thread's run: their
  cost grows with the number of threads.
- Creating a thread (its first ``put``) creates its run and the catalog entry; two
  savers creating the same thread at once agree on one run (the catalog entry is set in
  a transaction that only sets it if it is still absent) and the loser's empty run is
  purged. A crash right after a run is created (or forked, in ``copy_thread``) but
  before its catalog entry commits leaves an unnamed run behind: empty, or for a fork a
  copy of the source thread that ``delete_thread`` of the source cannot reach.
  :meth:`StrataSaver.sweep_orphans` purges such runs (each thread run's metadata names
  its thread, the catalog run and its fork depth).
- The catalog run only maps thread ids to runs: forking, archiving or purging it does
  not fork, archive or purge the threads' runs. Delete threads with ``delete_thread``.

Each saver caches thread → run lookups. A cached run that another saver purged raises
``RunError`` on use; the saver then looks the thread up again, so the cache never serves
a deleted thread.

Databases written by the first layout (every thread in the catalog run under ``lg:c/``,
``lg:h/``, ``lg:w/``, ``lg:r/`` and ``lg:tr/`` keys) are converted when a saver is
created on them: each thread's keys move to its own run, a few hundred keys per
transaction (each transaction writes the new keys and deletes the old ones), so a crash
mid-way loses nothing and the next saver finishes the move.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Optional, TypeVar

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

# Catalog run.
_T = "lg:t/"
# Thread runs.
_C = "c/"
_H = "h/"
_W = "w/"
_R = "r/"
# The first layout's families, all in the catalog run (see ``_migrate_v1``).
_V1 = ("lg:c/", "lg:h/", "lg:w/", "lg:r/", "lg:tr/")
_MIGRATE_CHUNK = 256
# A copy of a copy of … reads through every level of forks: past this depth
# ``copy_thread`` copies the keys into a fresh run instead of forking.
_MAX_FORK_DEPTH = 16

T = TypeVar("T")


class StrataSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer storing checkpoints and pending writes in StrataDB, one
    StrataDB run per LangGraph thread (see the module documentation for the layout).

    ``db`` is an open :class:`stratadb.Strata`; or use :meth:`from_path`, which opens one
    and closes it when the saver is closed (``with StrataSaver.from_path(p) as saver:``).
    ``run`` names the catalog run that maps thread ids to their runs (the default run if
    ``None``). Every method has an async twin; the async writes run in a worker thread
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
        self._catalog = run if run is not None else db.runs.default_run()
        self._owns_db = owns_db
        self._runs: dict[str, str] = {}
        if any(self.kv.keys(self._catalog, p, 1) for p in _V1):
            self._migrate_v1()

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

    # ----- threads and their runs ------------------------------------------------------

    def _run_of(self, t: str, create: bool = False) -> Optional[str]:
        """The run of thread ``t``; ``None`` if it has none and ``create`` is false."""
        run = self._runs.get(t)
        if run is not None:
            return run
        key = f"{_T}{enc(t)}"
        got = self.kv.get_in(self._catalog, key)
        if got is not None and self.db.runs.exists(got.value):
            self._runs[t] = got.value
            return got.value
        if not create:
            return None
        stale = got.value if got is not None else None
        fresh = self.db.runs.create(self._run_metadata(t, 0))
        winner = self._install(t, fresh, stale)
        if winner != fresh:
            self._purge_quietly(fresh)
        return winner

    def _install(self, t: str, run: str, stale: Optional[str]) -> str:
        """Points thread ``t`` at ``run`` unless another saver already gave it a live run
        (other than ``stale``, a run known to be gone); returns the thread's run."""
        key = f"{_T}{enc(t)}"
        catalog = self._catalog

        def txn(tx: Any) -> str:
            cur = tx.kv_get(catalog, key)
            if cur is not None and cur.value != stale:
                return cur.value
            tx.kv_set(catalog, key, run)
            return run

        winner = self.db.transaction(txn)
        self._runs[t] = winner
        return winner

    def _run_metadata(self, t: str, depth: int) -> dict:
        """What a thread's run records about itself: its thread, the catalog that names
        it (what :meth:`sweep_orphans` goes by) and how many forks deep it is."""
        return {"langgraph_thread": t, "langgraph_catalog": self._catalog, "fork_depth": depth}

    def _purge_quietly(self, run: str) -> None:
        try:
            self.db.runs.purge(run)
        except stratadb.RunError:
            pass  # already gone

    def _with_run(
        self, t: str, op: Callable[[str], T], *, create: bool = False, default: Any = None
    ) -> T:
        """Runs ``op(run)`` on thread ``t``'s run; ``default`` if the thread has none (and
        ``create`` is false). A cached run that was purged meanwhile (by another saver) is
        looked up again."""
        for _ in range(3):
            run = self._run_of(t, create)
            if run is None:
                return default
            try:
                return op(run)
            except stratadb.RunError:
                self._runs.pop(t, None)
                if self.db.runs.exists(run):
                    raise
                last = run
        raise stratadb.RunError(f"the run of thread {t!r} keeps disappearing (last {last})")

    def _threads(self) -> list[tuple[str, str]]:
        """Every thread with its run, in thread-id order."""
        n = len(_T)
        return [(dec(k[n:]), v) for k, v in self.kv.scan(self._catalog, _T)]

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
    def _parse_writes(found: list, prefix_len: int) -> list:
        out = []
        for k, v in found:
            task, idx = k[prefix_len:].split("/")
            out.append((dec(task), int(idx), v))
        return out

    def _refresh_head(self, run: str, ens: str) -> None:
        p = f"{_C}{ens}/"
        keys = self.kv.keys(run, p)
        if keys:
            self.kv.set_in(run, f"{_H}{ens}", keys[-1][len(p) :])
        else:
            self.kv.delete_in(run, f"{_H}{ens}")

    def _drop_checkpoints(self, run: str, doomed: set) -> None:
        """Deletes checkpoints ``(ens, cid)`` of a thread's run with their writes and
        run-index entries."""
        if not doomed:
            return
        for ens, cid in doomed:
            self.kv.delete_prefix(run, f"{_W}{ens}/{cid}/")
        keys = [f"{_C}{ens}/{cid}" for ens, cid in doomed]
        n = len(_R)
        for k in self.kv.keys(run, _R):
            _er, ens, cid = k[n:].split("/")
            if (ens, cid) in doomed:
                keys.append(k)
        self.kv.mdelete(run, keys)

    # ----- BaseCheckpointSaver ---------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> Optional[CheckpointTuple]:
        conf = config["configurable"]
        t = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns", "")
        cid = get_checkpoint_id(config)
        ens = enc(ns)

        def op(run: str) -> Optional[CheckpointTuple]:
            if cid:
                got = self.kv.get_in(run, f"{_C}{ens}/{cid}")
                if got is None:
                    return None
                found = self.kv.scan(run, f"{_W}{ens}/{cid}/")
                writes = self._parse_writes(found, len(f"{_W}{ens}/{cid}/"))
                return self._tuple(t, ns, cid, got.value, writes, config)
            head = self.kv.get_in(run, f"{_H}{ens}")
            if head is None:
                return None
            newest = head.value
            got = self.kv.get_in(run, f"{_C}{ens}/{newest}")
            if got is None:
                return None
            found = self.kv.scan(run, f"{_W}{ens}/{newest}/")
            writes = self._parse_writes(found, len(f"{_W}{ens}/{newest}/"))
            return self._tuple(t, ns, newest, got.value, writes)

        return self._with_run(t, op)

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
        prefix = _C if ns is None else f"{_C}{enc(ns)}/"
        before_cid = get_checkpoint_id(before) if before else None
        if limit is not None and limit <= 0:
            return
        found: list = []  # (thread, run, checkpoint keys)
        if t is None:
            for tt, run in self._threads():
                try:
                    found.append((tt, run, self.kv.keys(run, prefix)))
                except stratadb.RunError:
                    self._runs.pop(tt, None)  # deleted meanwhile
        else:
            tt = str(t)
            got = self._with_run(tt, lambda run: (run, self.kv.keys(run, prefix)))
            if got is not None:
                found.append((tt, got[0], got[1]))
        n = len(_C)
        selected = []
        for tt, run, keys in found:
            for k in keys:
                ens, cid = k[n:].split("/")
                if want_cid and cid != want_cid:
                    continue
                if before_cid and cid >= before_cid:
                    continue
                selected.append((cid, tt, ens, run))
        selected.sort(reverse=True)
        if limit is not None and not filter:
            selected = selected[: max(limit, 0)]
        if not selected:
            return
        # Fetch records and their writes in chunks, so a long history is never all in
        # memory at once and a small limit reads little; within a chunk, one call per
        # thread run.
        chunk = 64 if limit is None or filter else min(max(limit, 1), 256)
        remaining = limit
        for i in range(0, len(selected), chunk):
            part = selected[i : i + chunk]
            by_run: dict = defaultdict(list)
            for j, (_, _, _, run) in enumerate(part):
                by_run[run].append(j)
            recs: list = [None] * len(part)
            writes: list = [None] * len(part)
            for run, idxs in by_run.items():
                try:
                    got = self.kv.mget(run, [f"{_C}{part[j][2]}/{part[j][0]}" for j in idxs])
                except stratadb.RunError:
                    continue  # the thread was deleted meanwhile
                keep = []
                for j, rec in zip(idxs, got):
                    if rec is None:
                        continue
                    if filter:
                        md = self.serde.loads_typed((rec.value[2], rec.value[3]))
                        if not all(md.get(fk) == fv for fk, fv in filter.items()):
                            continue
                    recs[j] = rec
                    keep.append(j)
                prefixes = [f"{_W}{part[j][2]}/{part[j][0]}/" for j in keep]
                try:
                    scans = self.kv.scan_prefixes(run, prefixes)
                except stratadb.RunError:
                    scans = [[] for _ in keep]
                for j, p, found in zip(keep, prefixes, scans):
                    writes[j] = self._parse_writes(found, len(p))
            for (cid, tt, ens, _), rec, w in zip(part, recs, writes):
                if rec is None:
                    continue
                yield self._tuple(tt, dec(ens), cid, rec.value, w)
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
        ens = enc(ns)
        run_id = md.get("run_id")

        def op(run: str) -> None:
            entries = [(f"{_C}{ens}/{cid}", [ctype, cbytes, mtype, mbytes, parent])]
            head_key = f"{_H}{ens}"
            head = self.kv.get_in(run, head_key)
            if head is None or head.value < cid:
                entries.append((head_key, cid))
            if run_id is not None:
                entries.append((f"{_R}{enc(str(run_id))}/{ens}/{cid}", 1))
            self.kv.mset(run, entries)

        self._with_run(t, op, create=True)
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
        base = f"{_W}{enc(ns)}/{cid}/{enc(task_id)}/"
        fixed = []  # special channels: always replaced
        regular = []  # regular channels: written only if absent
        for idx, (channel, value) in enumerate(writes):
            i = WRITES_IDX_MAP.get(channel, idx)
            vtype, vbytes = self.serde.dumps_typed(value)
            entry = (f"{base}{i}", [channel, vtype, vbytes, task_path])
            (regular if i >= 0 else fixed).append(entry)
        if not fixed and not regular:
            return

        def op(run: str) -> None:
            kept = regular
            if kept:
                existing = self.kv.mget(run, [k for k, _ in kept])
                kept = [e for e, x in zip(kept, existing) if x is None]
            entries = fixed + kept
            if entries:
                self.kv.mset(run, entries)

        self._with_run(t, op, create=True)

    def delete_thread(self, thread_id: str) -> None:
        """Deletes a thread: its run is hard-purged (no byte of it survives the next
        compaction, except what a copy made earlier still sees), then its catalog entry
        is removed."""
        t = str(thread_id)
        key = f"{_T}{enc(t)}"
        got = self.kv.get_in(self._catalog, key)
        self._runs.pop(t, None)
        if got is None:
            return
        run = got.value
        self._purge_quietly(run)
        catalog = self._catalog

        def txn(tx: Any) -> None:
            cur = tx.kv_get(catalog, key)
            # Only if it still names the purged run: a put racing with this delete may
            # already have given the thread a new one.
            if cur is not None and cur.value == run:
                tx.kv_delete(catalog, key)

        self.db.transaction(txn)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Deletes the checkpoints (and their writes) whose metadata ``run_id`` is one of
        ``run_ids`` (LangGraph run ids, not StrataDB runs). Visits every thread."""
        prefixes = [f"{_R}{enc(str(r))}/" for r in run_ids]
        if not prefixes:
            return
        for t, run in self._threads():
            try:
                scans = self.kv.scan_prefixes(run, prefixes)
            except stratadb.RunError:
                continue  # deleted meanwhile
            doomed = set()
            for p, found in zip(prefixes, scans):
                n = len(p)
                for k, _ in found:
                    ens, cid = k[n:].split("/")
                    doomed.add((ens, cid))
            if doomed:
                self._drop_checkpoints(run, doomed)
                for ens in {e for e, _ in doomed}:
                    self._refresh_head(run, ens)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copies every checkpoint and pending write of a thread to another thread.

        Into a thread without checkpoints this forks the source's run: constant time,
        whatever the source holds; the two threads diverge from then on. (A copy more
        than 16 copies deep is copied key by key into a fresh run instead, so that reads
        never go through a long chain of forks.) Into a thread that has checkpoints the
        source's keys are merged into it (O(size of the source)), and each namespace's
        newest checkpoint stays the newest of both."""
        src, dst = str(source_thread_id), str(target_thread_id)
        if src == dst:
            return
        for _ in range(3):
            src_run = self._run_of(src)
            if src_run is None:
                return
            try:
                dst_run = self._run_of(dst)
                if dst_run is None:
                    dst_run = self._copy_into_new_run(src_run, dst)
                    if dst_run is None:
                        return  # installed
                self._merge(src_run, dst_run)
                return
            except stratadb.RunError:
                # A cached run was purged by another saver: look both threads up again.
                self._runs.pop(src, None)
                self._runs.pop(dst, None)
        raise stratadb.RunError(f"copy_thread({src!r}, {dst!r}): the threads keep changing")

    def _copy_into_new_run(self, src_run: str, dst: str) -> Optional[str]:
        """Gives thread ``dst`` (which had no run) a fork of ``src_run``, or a fresh copy
        past :data:`_MAX_FORK_DEPTH`. Returns ``None`` once installed, or the run another
        saver gave ``dst`` meanwhile (the caller merges into it)."""
        info = self.db.runs.get(src_run)
        if info is None:
            raise stratadb.RunError(f"run {src_run} does not exist")
        depth = int((info.value.get("metadata") or {}).get("fork_depth", 0)) + 1
        if depth > _MAX_FORK_DEPTH:
            run = self.db.runs.create(self._run_metadata(dst, 0))
            self._merge(src_run, run)
        else:
            run = self.db.runs.fork(src_run)
            # A fork starts with its parent's metadata: name the copy's own thread.
            self.db.runs.update_metadata(run, self._run_metadata(dst, depth))
        # Replace the catalog entry only if it names a run that no longer exists: a
        # thread another saver created meanwhile keeps its run.
        got = self.kv.get_in(self._catalog, f"{_T}{enc(dst)}")
        stale = got.value if got is not None and not self.db.runs.exists(got.value) else None
        winner = self._install(dst, run, stale)
        if winner == run:
            return None
        self._purge_quietly(run)
        return winner

    def _merge(self, src_run: str, dst_run: str) -> None:
        """Writes every key of ``src_run`` into ``dst_run`` in one transaction, each
        namespace's head becoming the newer of both, so a crash leaves the merge whole or
        not begun (a thread over the largest commit, 256 MiB, is merged in parts)."""
        entries = []
        heads = {}
        for k, v in self.kv.scan(src_run, ""):
            if k.startswith(_H):
                heads[k] = v
            else:
                entries.append((k, v))
        if heads:
            existing = self.kv.mget(dst_run, list(heads))
            for (k, v), cur in zip(heads.items(), existing):
                entries.append((k, v if cur is None or cur.value < v else cur.value))
        if not entries:
            return
        try:
            self.kv.mset(dst_run, entries)
        except stratadb.ConstraintViolationError:
            # Over the largest commit (256 MiB): in parts, the heads last, so that a
            # crash never leaves a head naming a checkpoint not copied yet.
            for i in range(0, len(entries), _MIGRATE_CHUNK):
                self.kv.mset(dst_run, entries[i : i + _MIGRATE_CHUNK])

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"`` keeps the newest checkpoint of every namespace (with its
        writes); ``"delete"`` removes the threads entirely."""
        if strategy == "delete":
            for t in thread_ids:
                self.delete_thread(t)
            return
        if strategy != "keep_latest":
            raise ValueError(f"unknown prune strategy {strategy!r}")
        n = len(_C)

        def op(run: str) -> None:
            by_ns: dict = defaultdict(list)
            for k in self.kv.keys(run, _C):
                ens, cid = k[n:].split("/")
                by_ns[ens].append(cid)
            doomed = set()
            for ens, cids in by_ns.items():
                cids.sort()
                doomed.update((ens, cid) for cid in cids[:-1])
            self._drop_checkpoints(run, doomed)

        for t in thread_ids:
            self._with_run(str(t), op)

    def sweep_orphans(self, min_age_seconds: float = 60.0) -> int:
        """Purges thread runs of this saver's catalog that the catalog does not name and
        that are older than ``min_age_seconds``; returns how many.

        Such runs are left by a crash between creating a thread's run (its first
        ``put``, or the fork of ``copy_thread``) and naming it in the catalog: the first
        is empty, but a fork holds a copy of the source thread, which ``delete_thread``
        of the source then cannot reach. Call it at start-up; the age bound keeps it
        away from runs other savers are creating right now.
        """
        import time

        named = {run for _, run in self._threads()}
        cutoff = int((time.time() - min_age_seconds) * 1_000_000)
        swept = 0
        for r in self.db.runs.list():
            info = r.value
            md = info.get("metadata") or {}
            if (
                isinstance(md, dict)
                and "langgraph_thread" in md
                and md.get("langgraph_catalog") == self._catalog
                and info["run_id"] not in named
                and info["created_at"] <= cutoff
            ):
                self._purge_quietly(info["run_id"])
                swept += 1
        return swept

    # ----- the first layout ------------------------------------------------------------

    def _migrate_v1(self) -> None:
        """Moves every thread of the first layout (all in the catalog run) into a run of
        its own. Each transaction writes a chunk of new keys and deletes the same old
        ones, so a crash leaves every key in exactly one place and a later saver resumes.
        """
        cat = self._catalog
        threads = set()
        for fam in ("lg:c/", "lg:h/", "lg:w/", "lg:tr/"):
            for k in self.kv.keys(cat, fam):
                threads.add(k[len(fam) :].split("/", 1)[0])
        for et in sorted(threads):
            run = self._run_of(dec(et), create=True)
            moves = []  # (old key in the catalog run or None, new key, value)
            for fam, new in (("lg:c/", _C), ("lg:w/", _W)):
                p = f"{fam}{et}/"
                moves += [(k, new + k[len(p) :], v) for k, v in self.kv.scan(cat, p)]
            p = f"lg:tr/{et}/"
            for k, v in self.kv.scan(cat, p):
                er, rest = k[len(p) :].split("/", 1)
                moves.append((k, f"{_R}{er}/{rest}", v))
                moves.append((f"lg:r/{er}/{et}/{rest}", None, None))
            heads = [k for k in self.kv.keys(cat, f"lg:h/{et}/")]
            for i in range(0, len(moves), _MIGRATE_CHUNK):
                part = moves[i : i + _MIGRATE_CHUNK]

                def txn(tx: Any, part: list = part) -> None:
                    for old, new, value in part:
                        if new is not None:
                            tx.kv_set(run, new, value)
                        tx.kv_delete(cat, old)

                self.db.transaction(txn)
            for h in heads:
                self._refresh_head(run, h[len(f"lg:h/{et}/") :])
                self.kv.delete_in(cat, h)
        # Run-index entries whose thread entries were already gone.
        for k in self.kv.keys(cat, "lg:r/"):
            self.kv.delete_in(cat, k)

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
