"""LangGraph integration: :class:`StrataSaver` (checkpointer) and :class:`StrataStore`
(long-term memory store), both on one embedded StrataDB database.

Requires ``langgraph`` and ``langgraph-checkpoint`` (>= 4.0.1)::

    import stratadb
    from stratadb.langgraph import StrataSaver, StrataStore

    db = stratadb.open("./agent-db")
    graph = builder.compile(checkpointer=StrataSaver(db), store=StrataStore(db))
"""

from .saver import StrataSaver
from .store import StrataStore

__all__ = ["StrataSaver", "StrataStore"]
