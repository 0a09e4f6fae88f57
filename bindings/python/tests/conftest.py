"""Shared fixtures. Every database lives in pytest's tmp_path (or is ephemeral)."""

import pytest

import stratadb


@pytest.fixture
def db():
    d = stratadb.ephemeral()
    yield d
    d.close()


@pytest.fixture
def disk_db(tmp_path):
    d = stratadb.open(tmp_path / "db")
    yield d
    d.close()
