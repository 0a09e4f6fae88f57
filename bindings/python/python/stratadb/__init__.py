"""StrataDB: an embedded database for AI agents.

Key-value pairs, JSON documents, event streams, state cells and vectors, scoped by runs,
every write versioned, durable through a write-ahead log, with optimistic transactions
across all of them::

    import stratadb

    with stratadb.open("./agent-db") as db:
        db.kv.set("user:name", "Alice")
        assert db.kv.get("user:name").value == "Alice"
        db.json.set("profile:1", {"name": "Alice", "age": 30})
        db.events.append("activity", {"action": "login"})

Every primitive has three levels, as in Rust: the default run (``db.kv.set(key, v)``),
a given run (``db.kv.set_in(run, key, v)``) and full control (``db.kv.put(run, key, v)``
returning the version). Runs are ``str`` ids; ``None`` means the default run.

Values convert both ways exactly (``dict``/``list``/``str``/``int``/``float``/``bool``/
``bytes``/``None``; ints beyond 64 bits are an ``OverflowError``; numpy scalars are
stored as the ``int``/``float``/``bool`` they stand for). The engine's objects
are unordered, so a ``dict`` comes back with its keys sorted, the same way every time.

Every database call releases the GIL, so threads (and ``asyncio.to_thread``) run in
parallel. Errors are subclasses of :class:`StrataError`; :class:`ConflictError` has
``retryable = True``.

The LangGraph checkpointer and store live in :mod:`stratadb.langgraph`.
"""

from __future__ import annotations

import os
from typing import Union

from ._stratadb import (
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    ClosedError,
    ConflictError,
    ConstraintViolationError,
    Events,
    InternalError,
    InvalidKeyError,
    InvalidPathError,
    IoError,
    Json,
    KV,
    NotFoundError,
    RunError,
    Runs,
    SerializationError,
    State,
    StorageError,
    Strata,
    StrataBuilder,
    StrataError,
    Txn,
    View,
    VectorMatch,
    Vectors,
    Versioned,
    WrongTypeError,
    __version__,
)

__all__ = [
    "open",
    "ephemeral",
    "Strata",
    "StrataBuilder",
    "Txn",
    "View",
    "Versioned",
    "VectorMatch",
    "KV",
    "Json",
    "Events",
    "State",
    "Vectors",
    "Runs",
    "StrataError",
    "NotFoundError",
    "WrongTypeError",
    "InvalidKeyError",
    "InvalidPathError",
    "ConflictError",
    "ConstraintViolationError",
    "RunError",
    "IoError",
    "SerializationError",
    "StorageError",
    "InternalError",
    "ClosedError",
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "__version__",
]

_DURABILITY = ("buffered", "strict", "no_durability")


def open(path: Union[str, "os.PathLike[str]"], durability: str = "buffered") -> Strata:  # noqa: A001
    """Opens (or creates) a database in ``path``.

    ``durability`` is ``"buffered"`` (the default: fsync within 100 ms or 1,000 commits),
    ``"strict"`` (every commit is fsynced before it returns; concurrent commits share an
    fsync) or ``"no_durability"`` (never fsync; a process crash loses nothing, a power
    loss may lose recent commits).
    """
    b = Strata.builder().path(os.fspath(path))
    if durability == "buffered":
        b = b.buffered()
    elif durability == "strict":
        b = b.strict()
    elif durability == "no_durability":
        b = b.no_durability()
    else:
        raise ValueError(f"durability must be one of {_DURABILITY}, not {durability!r}")
    return b.open()


def ephemeral() -> Strata:
    """A database without any files; its data is lost when it is closed."""
    return Strata.ephemeral()
