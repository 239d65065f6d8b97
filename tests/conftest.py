"""Test fixtures: a real FerretDB, a real SMTP server, and a Kahuna served on loopback per test."""

from gevent import monkey

monkey.patch_all()

import itertools  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402

from kahuna.storage.embedded import EmbeddedFerretDB, free_loopback_port  # noqa: E402
from tests import topology  # noqa: E402
from tests.deployment import Deployment  # noqa: E402
from tests.mailserver import MailServer  # noqa: E402

_databases = itertools.count()


@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory):
    """One FerretDB (SQLite backend) for the session; each test gets its own database in it."""
    server = EmbeddedFerretDB(tmp_path_factory.mktemp("ferretdb")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mail_server(tmp_path_factory):
    server = MailServer(tmp_path_factory.mktemp("maildir"), free_loopback_port()).start()
    yield server
    server.stop()


@pytest.fixture
def deployment(ferretdb, mail_server):
    """A running Kahuna on a fresh database, with helpers to act as its users."""
    name = f"kahuna_test_{os.getpid()}_{next(_databases)}"
    running = Deployment.start(ferretdb.uri, name, mail_server)
    yield running
    running.stop()


@pytest.fixture
def platform(deployment):
    """The simulated topology of tests/topology.py with an OS template per region (modules may override it)."""
    return topology.build(deployment, with_templates=True)
