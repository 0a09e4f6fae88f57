"""LangGraph's own checkpointer conformance suite (langgraph-checkpoint-conformance)
against StrataSaver, at full level: the 5 base capabilities and the 3 extended ones.

The suite records failures instead of raising and ``passed_all()`` only counts what it
detected, so each capability is asserted to be detected, run and passed, with the
expected number of tests."""

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

import stratadb
from stratadb.langgraph import StrataSaver

EXTENDED = {"copy_thread": 8, "delete_for_runs": 7, "prune": 8}
BASE = ("put", "put_writes", "get_tuple", "list", "delete_thread")
BASE_TOTAL = 58


async def _check(registered):
    report = await validate(registered, progress=ProgressCallbacks.verbose())
    failures = {
        name: r.failures for name, r in report.results.items() if r.failures
    }
    assert not failures, failures
    base_total = 0
    for cap in BASE:
        r = report.results[cap]
        assert r.detected and r.passed, (cap, r)
        base_total += r.tests_passed
    assert base_total == BASE_TOTAL, base_total
    for cap, n in EXTENDED.items():
        r = report.results[cap]
        assert r.detected, f"{cap} not detected"
        assert r.passed, (cap, r.failures)
        assert r.tests_passed == n and r.tests_failed == 0, (cap, r)
    assert report.passed_all()


@pytest.mark.asyncio
async def test_conformance_on_disk(tmp_path):
    counter = iter(range(100))

    @checkpointer_test(name="StrataSaver-disk")
    async def factory():
        with StrataSaver.from_path(str(tmp_path / f"db{next(counter)}")) as saver:
            yield saver

    await _check(factory)


@pytest.mark.asyncio
async def test_conformance_ephemeral():
    @checkpointer_test(name="StrataSaver-ephemeral")
    async def factory():
        db = stratadb.ephemeral()
        yield StrataSaver(db)
        db.close()

    await _check(factory)


@pytest.mark.asyncio
async def test_conformance_in_a_run():
    """The saver also works inside a StrataDB run other than the default one."""

    @checkpointer_test(name="StrataSaver-run")
    async def factory():
        db = stratadb.ephemeral()
        yield StrataSaver(db, run=db.runs.create({"purpose": "checkpoints"}))
        db.close()

    await _check(factory)
