"""Kahuna's composition root: builds the database, services, actors and HTTP app from a config.

Everything that owns a process-wide resource is started here and stopped in
reverse order by :meth:`Kahuna.stop`.
"""

from __future__ import annotations

import logging
import sys
import typing
from dataclasses import dataclass, field

import gevent
import pykka

from kahuna.config import Config
from kahuna.ha import LeaseStore, node_identity
from kahuna.mail import Mailer, mailer_for
from kahuna.metrics import Metrics
from kahuna.server import NoDelayWSGIServer
from kahuna.services import Services, build_services
from kahuna.services.recovery import Recovery
from kahuna.storage import Database
from kahuna.storage.embedded import EmbeddedFerretDB
from kahuna.watchdog import HubWatchdog

log = logging.getLogger("kahuna")

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=NOTICE if level.upper() == "NOTICE" else getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )
    # pykka logs, with a traceback at INFO, every exception an actor hands back to its caller: here those are
    # the callers' answers (a 409, an agent away), reported where they are handled.
    logging.getLogger("pykka").setLevel(max(logging.WARNING, logging.getLogger().level))


#: Seconds between two attempts at destroying what crashed operations left (once their agents are back).
RECOVERY_INTERVAL = 10.0


def _clean_up_leftovers(recovery: Recovery, is_active: typing.Callable[[], bool], interval: float) -> None:
    while True:
        try:
            if is_active() and recovery.pending():
                recovery.clean_up()
        except Exception:  # noqa: BLE001 - e.g. the database is away: try again next time
            log.exception("crash recovery: clean-up failed, will retry")
        gevent.sleep(interval)


@dataclass
class Kahuna:
    """A running Kahuna: ``Kahuna.start(config)``, then ``serve_forever()`` or ``stop()``."""

    config: Config
    db: Database
    services: Services
    application: object
    plane: typing.Any = None
    agent_socket: typing.Any = None
    metrics: Metrics | None = None
    # The HA lease keeper (None when HA is off: the node is always active).
    lease: typing.Any = None
    embedded: EmbeddedFerretDB | None = None
    server: NoDelayWSGIServer | None = None
    # CPU stretches without yielding on the hub (None when global.watchdog.enabled is false).
    watchdog: HubWatchdog | None = None
    _cleaner: typing.Any = field(default=None, repr=False)
    _preloader: typing.Any = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, config: Config, mailer: Mailer | None = None) -> Kahuna:
        # Imported here: these pull in pykka and Flask, which must come after gevent's patching.
        import gevent

        from actors import AgentPlane, AgentSettings, LeaseKeeper, Serializer, Throttle
        from api import AgentSocket, NodeState, create_app

        # Each greenlet would otherwise keep a copy of the stack that spawned it (some 25 objects): with
        # two greenlets per connected agent that is a third of what an agent costs, for a debugging aid.
        gevent.config.track_greenlet_tree = False
        embedded = None
        g = config.global_
        # An SMTP relay, or without one a maildir (created now: a directory that cannot be is a start-up error).
        mailer = mailer or mailer_for(config)
        uri = g.db.uri
        if g.db.embedded.enabled:
            embedded = EmbeddedFerretDB(g.db.embedded.dataDir, g.db.embedded.ferretdb).start()
            uri = embedded.uri
        db = Database(uri, g.db.name, g.db.timeoutSeconds)
        try:
            db.ping()
            db.initialize()
        except Exception:
            db.close()
            if embedded:
                embedded.stop()
            raise
        metrics = Metrics()
        plane = AgentPlane(AgentSettings(ping_interval=g.agents.pingIntervalSeconds,
                                         dead_after=g.agents.deadAfterSeconds,
                                         max_message_bytes=g.agents.maxMessageBytes,
                                         max_garbage=g.agents.maxGarbageFrames,
                                         garbage_window=g.agents.garbageWindowSeconds,
                                         late_reply_grace=g.agents.lateReplyGraceSeconds),
                           observe_rpc=metrics.observe_rpc)
        services = build_services(config, db, mailer, Serializer(), plane, Throttle())
        plane.set_on_connected(services.agents.on_agents_connected)
        recovery = Recovery(db, services)
        lease = None
        is_active: typing.Callable[[], bool] = lambda: True  # noqa: E731
        if g.ha.enabled:
            def open_lease_store() -> LeaseStore:
                # In the lease keeper's own thread, on a client of its own (see actors/_lease.py).
                return LeaseStore(Database(uri, g.db.name), g.ha.leaseSeconds)

            def become_writer(lease_token: int) -> None:
                # Before the node serves as active: forget what it cached while passive, and finish or undo
                # what the previous writer left half-way; then (in the background) preload the agents' credentials.
                db.cache.clear()
                recovery.take_over(lease_token)
                services.agents.expect_preload()

            def become_passive() -> None:
                # The agents go to the new active node.
                plane.disconnect_all("this Kahuna node is now passive")

            lease = LeaseKeeper(open_lease_store, node_identity(g.ha.nodeName), g.ha.leaseSeconds,
                                on_lost=become_passive, on_gained=become_writer)
            is_active = lease.is_active
        else:
            recovery.take_over()
            services.agents.expect_preload()
        # Reads by _id come from memory while this node is active; a passive node reads the database.
        db.cache.attach(is_active)
        metrics.watch(db, plane.count_by_type, is_active)
        agent_socket = AgentSocket(services.agents, plane, accepting=is_active)
        application = create_app(services, agent_socket, NodeState(is_active, metrics))
        watchdog = None
        if g.watchdog.enabled:
            watchdog = HubWatchdog(g.watchdog.thresholdMs / 1000).start()
            metrics.watch_hub(watchdog)
        kahuna = cls(config=config, db=db, services=services, application=application, plane=plane,
                     agent_socket=agent_socket, embedded=embedded, metrics=metrics, lease=lease,
                     watchdog=watchdog)
        kahuna._cleaner = gevent.spawn(_clean_up_leftovers, recovery, is_active, RECOVERY_INTERVAL)
        # Once the cache is attached (which clears it): the credentials' preload of each active term.
        kahuna._preloader = gevent.spawn(services.agents.preload_on_request)
        return kahuna

    def bootstrap_admin(self, email: str | None = None) -> tuple[str, str] | None:
        """Create the first superAdmin when there is no user; return (e-mail, password) to show once."""
        created = self.services.users.ensure_bootstrap_admin(email or self.config.global_.adminEmail)
        if created is None:
            return None
        user, password = created
        return user["email"], password

    def listen(self, address: str | None = None, port: int | None = None) -> NoDelayWSGIServer:
        http = self.config.global_.http
        from actors import GatedWebSocketHandler

        self.server = NoDelayWSGIServer((address or http.address, http.port if port is None else port),
                                        self.application, log=None, error_log=log,
                                        handler_class=GatedWebSocketHandler, idle_timeout=http.idleTimeoutSeconds,
                                        max_connections=http.maxConnections,
                                        header_timeout=http.headerTimeoutSeconds,
                                        incomplete_share=http.incompleteRequestsShare,
                                        max_body_bytes=http.maxBodyBytes)
        self.server.upgrade_gate = self.agent_socket.gate
        self.server.start()
        log.info("serving Kowabunga API at http://%s:%d/api/v1", *self.server.address[:2])
        return self.server

    def serve_forever(self) -> None:
        assert self.server is not None, "call listen() first"
        self.server.serve_forever()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._cleaner is not None:
            self._cleaner.kill(block=False)
        if self._preloader is not None:
            self._preloader.kill(block=False)
        if self.lease is not None:
            self.lease.stop(release=True)
        if self.server is not None:
            self.server.stop(timeout=self.config.global_.http.shutdownGraceSeconds)
        if self.plane is not None:
            self.plane.stop()
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
        self.db.close()
        if self.embedded:
            self.embedded.stop()
        if self.watchdog is not None:
            self.watchdog.stop()
