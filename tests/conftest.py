"""Test fixtures: a real FerretDB, a real SMTP server, and a Kahuna served on loopback per test.

The helpers behind them (the daemon, the SDK, the simulated agents) are imported by the fixtures that use
them: the unit tier (tests/unit), which loads this file too, never pays for them.

Platforms, the simulated topology of tests/topology.py on a ``deployment``:

- ``platform``: with an OS template per region, for instances;
- ``bare_platform``: without templates.

(tests/test_crash_recovery.py has its own ``node_platform``: a ``kahuna serve`` process it kills.)

A module whose tests need another configuration of Kahuna overrides ``deployment_settings``.
"""

from gevent import monkey

monkey.patch_all()

import itertools  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402

pytest_plugins = ["tests.sdk058.harness"]  # the 0.58 SDK's fixtures: sdk058, sdk058_python

_databases = itertools.count()

@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory):
    """One FerretDB (SQLite backend) for the session; each test gets its own database in it."""
    from kahuna.storage.embedded import EmbeddedFerretDB

    server = EmbeddedFerretDB(tmp_path_factory.mktemp("ferretdb")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mail_server(tmp_path_factory):
    from kahuna.storage.embedded import free_loopback_port
    from tests.mailserver import MailServer

    server = MailServer(tmp_path_factory.mktemp("maildir"), free_loopback_port()).start()
    yield server
    server.stop()


@pytest.fixture
def deployment_settings():
    """Configuration overrides (dotted keys, e.g. ``{"global.http.trustedProxies": 1}``) of the Kahuna of
    ``deployment``, beside those of :meth:`tests.deployment.Deployment.start`; a module overrides this fixture."""
    return {}


@pytest.fixture
def deployment(ferretdb, mail_server, deployment_settings):
    """A running Kahuna on a fresh database, with helpers to act as its users."""
    from tests.deployment import Deployment

    name = f"kahuna_test_{os.getpid()}_{next(_databases)}"
    running = Deployment.start(ferretdb.uri, name, mail_server, **deployment_settings)
    yield running
    running.stop()


@pytest.fixture
def platform(deployment):
    """The simulated topology of tests/topology.py, with an OS template (``ubuntu-24``) per region, for instances."""
    from tests import topology

    return topology.build(deployment, with_templates=True)


@pytest.fixture
def bare_platform(deployment):
    """The simulated topology of tests/topology.py without any OS template."""
    from tests import topology

    return topology.build(deployment)
