"""The unit tier: pure modules, and services through the fakes of tests/unit/fakes.py.

No FerretDB, no agent, no mail relay: nothing here opens a network socket or starts a process (both are refused
below, so that a test that would is caught rather than slow), and the whole tier runs in a few seconds.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

from kahuna.credentials import PasswordHasher
from tests.unit.fakes import FakeAgentPlane, FakeMailer, InlineOwners, OpenLimiter, memory_database


@pytest.fixture(autouse=True)
def _no_socket_no_subprocess(monkeypatch):
    def refused(what: str):
        def refuse(*args, **kwargs):
            raise AssertionError(f"a unit test {what}: that belongs to the end-to-end tests (tests/test_*.py)")
        return refuse

    for method in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, method, refused("opened a network socket"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refused("started a process"))


@pytest.fixture
def db():
    """A kahuna.storage.Database in memory, empty."""
    return memory_database()


@pytest.fixture
def agents():
    """The agent plane, with no agent connected and nothing scripted."""
    return FakeAgentPlane()


@pytest.fixture
def mailer():
    return FakeMailer()


@pytest.fixture
def owners():
    return InlineOwners()


@pytest.fixture
def limiter():
    return OpenLimiter()


@pytest.fixture(scope="session")
def hasher():
    """Real bcrypt at its cheapest cost."""
    return PasswordHasher(4)
