"""A real LangGraph StateGraph compiled with StrataSaver and StrataStore: invoke on a
thread, interrupt and resume, history, replay and update_state from a past checkpoint,
and state that survives closing the database and reopening it in a new process."""

import operator
import subprocess
import sys
import textwrap
from typing import Annotated, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Command, interrupt

import stratadb
from stratadb.langgraph import StrataSaver, StrataStore


class State(TypedDict):
    steps: Annotated[list, operator.add]
    approved: bool


def plan(state: State, *, store: BaseStore):
    n = store.get(("memory",), "runs")
    count = (n.value["count"] if n else 0) + 1
    store.put(("memory",), "runs", {"count": count})
    return {"steps": [f"plan#{count}"]}


def review(state: State):
    answer = interrupt({"question": "approve?", "steps": state["steps"]})
    return {"steps": ["review"], "approved": answer == "yes"}


def act(state: State):
    return {"steps": ["act" if state["approved"] else "skip"]}


def build(saver, store):
    g = StateGraph(State)
    g.add_node("plan", plan)
    g.add_node("review", review)
    g.add_node("act", act)
    g.add_edge(START, "plan")
    g.add_edge("plan", "review")
    g.add_edge("review", "act")
    g.add_edge("act", END)
    return g.compile(checkpointer=saver, store=store)


def run_flow(graph, thread):
    cfg = {"configurable": {"thread_id": thread}}
    out = graph.invoke({"steps": [], "approved": False}, cfg)
    assert "__interrupt__" in out
    snap = graph.get_state(cfg)
    assert snap.next == ("review",)
    assert snap.tasks[0].interrupts[0].value["question"] == "approve?"
    out = graph.invoke(Command(resume="yes"), cfg)
    assert out["steps"] == ["plan#1", "review", "act"] or out["steps"][-2:] == ["review", "act"]
    assert out["approved"] is True
    return cfg


def test_graph_interrupt_resume_history_replay(tmp_path):
    db = stratadb.open(tmp_path / "db")
    graph = build(StrataSaver(db), StrataStore(db))
    cfg = run_flow(graph, "t1")
    final = graph.get_state(cfg)
    assert final.next == () and final.values["steps"] == ["plan#1", "review", "act"]

    history = list(graph.get_state_history(cfg))
    assert len(history) >= 4
    assert history[0].config["configurable"]["checkpoint_id"] == final.config["configurable"]["checkpoint_id"]
    # The checkpoint just before "review" ran.
    before_review = next(s for s in history if s.next == ("review",))
    assert before_review.values["steps"] == ["plan#1"]

    # Fork from the past: change the state there and resume with another answer.
    forked = graph.update_state(before_review.config, {"steps": ["edited"]})
    out = graph.invoke(None, forked)
    assert "__interrupt__" in out
    out = graph.invoke(Command(resume="no"), forked)
    assert out["steps"] == ["plan#1", "edited", "review", "skip"]
    assert out["approved"] is False

    # Replaying from a past checkpoint re-runs what came after it.
    after_plan = next(s for s in history if s.next == ("plan",))
    out = graph.invoke(None, after_plan.config)
    assert out["steps"] == ["plan#2"]
    assert StrataStore(db).get(("memory",), "runs").value == {"count": 2}

    # Other threads are independent; list with a filter and a limit.
    run_flow(graph, "t2")
    saver = StrataSaver(db)
    assert len(list(saver.list({"configurable": {"thread_id": "t2"}}, limit=2))) == 2
    inputs = list(saver.list({"configurable": {"thread_id": "t1"}}, filter={"source": "input"}))
    assert inputs and all(t.metadata["source"] == "input" for t in inputs)
    db.close()


@pytest.mark.asyncio
async def test_graph_async(tmp_path):
    db = stratadb.open(tmp_path / "db")
    graph = build(StrataSaver(db), StrataStore(db))
    cfg = {"configurable": {"thread_id": "a"}}
    out = await graph.ainvoke({"steps": [], "approved": False}, cfg)
    assert "__interrupt__" in out
    out = await graph.ainvoke(Command(resume="yes"), cfg)
    assert out["steps"] == ["plan#1", "review", "act"]
    states = [s async for s in graph.aget_state_history(cfg)]
    assert len(states) >= 4
    db.close()


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    import stratadb
    from langgraph.types import Command
    from stratadb.langgraph import StrataSaver, StrataStore
    from test_graph import build

    db = stratadb.open(sys.argv[1])
    graph = build(StrataSaver(db), StrataStore(db))
    cfg = {"configurable": {"thread_id": "persist"}}
    if sys.argv[3] == "start":
        graph.invoke({"steps": [], "approved": False}, cfg)
    else:
        snap = graph.get_state(cfg)
        assert snap.next == ("review",), snap.next
        out = graph.invoke(Command(resume="yes"), cfg)
        print(",".join(out["steps"]))
    db.close()
    """
)


def test_state_survives_reopen_in_new_process(tmp_path):
    path = str(tmp_path / "db")
    here = str(__import__("pathlib").Path(__file__).parent)
    subprocess.run([sys.executable, "-c", CHILD, path, here, "start"], check=True)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, path, here, "resume"], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "plan#1,review,act"
    with stratadb.open(path) as db:
        assert StrataStore(db).get(("memory",), "runs").value == {"count": 1}
        assert len(list(StrataSaver(db).list({"configurable": {"thread_id": "persist"}}))) >= 4
