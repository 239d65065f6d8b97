"""The agent plane's facade: connections served, calls made, agents welcomed.

:class:`AgentPlane` is what the rest of Kahuna sees of the agents (it implements
:class:`kahuna.rpc.AgentPlane`). Behind it, one :class:`~actors._connection.AgentConnection`
actor per connected agent owns that agent's socket and calls, and one
:class:`~actors._registry.AgentRegistry` actor knows them all.

**Reading.** :meth:`AgentPlane.serve` runs in the upgraded HTTP request's greenlet: it
reads frames and hands each to the connection actor, yields to the other greenlets after
each one (a flood already buffered would otherwise be read without ever waiting), and at
the end of the stream hands the actor the close to send. It returns only once the actor
has closed the socket: after that gevent-websocket would write a close frame of its own.

**Welcoming.** After a restart or a failover every agent reconnects at once. Their sockets
are served (and pinged) at once, but their post-connection work (database writes, scans,
replays) is handed to the ``on_connected`` hook in batches, one batch at a time, so that
the database sees a few queries per batch instead of a few per agent.

An agent closed for abuse (see :mod:`actors._connection`) is refused (429, before the
upgrade) for one more ``garbage_window``: dialling again at once cannot buy it a fresh
budget.
"""

from __future__ import annotations

import logging
import time
import typing

import gevent
import gevent.queue
import pykka

from actors._connection import AgentConnection, AgentInfo, AgentSettings
from actors._messages import (
    TICK,
    Abandon,
    Call,
    CallAgent,
    CallAny,
    Close,
    ConnectedAmong,
    CountByType,
    Disconnect,
    DisconnectAll,
    Inbound,
    ListAgents,
    Lookup,
    Register,
)
from actors._query import Query, ask
from actors._registry import PING_SLICES, AgentRegistry
from actors._transport import GOING_AWAY, NORMAL, Transport, TransportClosed
from kahuna import rpc
from kahuna.errors import AgentDisconnected, AgentTimeout, AgentUnavailable

log = logging.getLogger(__name__)

#: Seconds the reader waits, once the connection ends, for the actor to send its close frame.
CLOSE_WAIT = 5.0
#: At most this many welcomed agents in one call of the ``on_connected`` hook.
WELCOME_BATCH = 500
#: Seconds of an ask to the registry (it answers at once unless the process is starved).
REGISTRY_TIMEOUT = 10.0

OnConnected = typing.Callable[[list[AgentInfo]], None]
T = typing.TypeVar("T")


class AgentPlane:
    """Connected agents and the calls to them; implements :class:`kahuna.rpc.AgentPlane`."""

    def __init__(self, settings: AgentSettings | None = None, on_connected: OnConnected | None = None,
                 observe_rpc: typing.Callable[[str, str, float], None] | None = None):
        self.settings = settings or AgentSettings()
        self._on_connected = on_connected
        # (method, outcome, seconds) of every call: ok, failed, timeout or disconnected.
        self._observe_rpc = observe_rpc or (lambda method, outcome, seconds: None)
        self._welcomed: gevent.queue.SimpleQueue = gevent.queue.SimpleQueue()
        self._registry = AgentRegistry.start(self._welcomed.put)
        self._ticker = gevent.spawn(self._tick_forever)
        self._welcomer = gevent.spawn(self._welcome_forever)
        # Agents closed for abuse, and until when (monotonic) their handshakes are refused.
        self._cooling: dict[str, float] = {}

    def set_on_connected(self, hook: OnConnected) -> None:
        self._on_connected = hook

    # -- connections ---------------------------------------------------------------------

    def serve(self, info: AgentInfo, websocket: typing.Any) -> None:
        """Run one agent connection until it ends; called from the upgraded request's greenlet."""
        transport = Transport(websocket, self.settings.max_message_bytes)
        connection = AgentConnection.start(info, transport, self._registry, self.settings, self._penalise,
                                           self._observe_rpc)
        self._registry.tell(Register(info, connection))
        log.info("agent %s (%s %s) connected from %s", info.id, info.type, info.name, info.remote)
        close = Close(NORMAL, "connection ended")
        try:
            while True:
                connection.tell(Inbound(transport.read()))
                gevent.sleep(0)
        except TransportClosed as exc:
            close = Close(exc.code or NORMAL, str(exc))
        except pykka.ActorDeadError:
            pass  # closed by Kahuna
        finally:
            try:
                connection.tell(close)
            except pykka.ActorDeadError:
                pass
            connection.actor_stopped.wait(CLOSE_WAIT)
            websocket.closed = True

    def _penalise(self, agent_id: str) -> None:
        now = time.monotonic()
        if len(self._cooling) > 1000:
            self._cooling = {key: until for key, until in self._cooling.items() if until > now}
        self._cooling[agent_id] = now + self.settings.garbage_window

    def cooling_down(self, agent_id: str) -> float:
        """Seconds during which *agent_id*, closed for abuse, is still refused (0: it is welcome)."""
        until = self._cooling.get(agent_id)
        if until is None:
            return 0.0
        left = until - time.monotonic()
        if left <= 0:
            del self._cooling[agent_id]
            return 0.0
        return left

    def _welcome_forever(self) -> None:
        while True:
            batch = [self._welcomed.get()]
            while len(batch) < WELCOME_BATCH and not self._welcomed.empty():
                batch.append(self._welcomed.get())
            if self._on_connected is None:
                continue
            try:
                self._on_connected(batch)
            except Exception:
                log.exception("post-connection work for %d agents failed", len(batch))

    # -- what is connected ---------------------------------------------------------------

    def _ask(self, query: Query[T]) -> T:
        return ask(self._registry, query, REGISTRY_TIMEOUT)

    def connected(self) -> list[AgentInfo]:
        """Every connected agent (costs what is connected: for listings, not for decisions)."""
        return self._ask(ListAgents())

    def count_by_type(self) -> dict[str, int]:
        return self._ask(CountByType())

    def info(self, agent_id: str) -> AgentInfo | None:
        return self._ask(Lookup(agent_id))

    def connected_ids(self, agent_ids: typing.Iterable[str]) -> list[str]:
        """Those of *agent_ids* that are connected now."""
        return self._ask(ConnectedAmong(tuple(agent_ids)))

    def disconnect(self, agent_id: str, reason: str, code: int = NORMAL) -> bool:
        return self._ask(Disconnect(agent_id, code, reason))

    def disconnect_all(self, reason: str) -> int:
        """Close every agent's socket (this node turned passive: they reconnect to the active one)."""
        return self._ask(DisconnectAll(GOING_AWAY, reason))

    # -- calls ---------------------------------------------------------------------------

    def call(self, agent_id: str, method: rpc.Method[rpc.P, rpc.R], params: rpc.Params[rpc.P] = None,
             timeout: float | None = None) -> rpc.R:
        """Call *method* on the connected agent *agent_id* and return its result."""
        call = Call(method, params)
        return self._call(CallAgent(agent_id, call), call, timeout)

    def call_any(self, agent_ids: typing.Iterable[str], method: rpc.Method[rpc.P, rpc.R],
                 params: rpc.Params[rpc.P] = None, timeout: float | None = None) -> rpc.R:
        """Call *method* on one connected agent among *agent_ids* that serves it, chosen at random."""
        call = Call(method, params)
        return self._call(CallAny(tuple(agent_ids), call), call, timeout)

    def broadcast(self, agent_ids: typing.Iterable[str], method: rpc.Method[rpc.P, rpc.R],
                  params: rpc.Params[rpc.P] = None, timeout: float | None = None) -> dict[str, rpc.R | Exception]:
        """Call *method* on every agent of *agent_ids* at once; each agent's result or error."""
        targets = list(dict.fromkeys(agent_ids))
        calls = {agent_id: gevent.spawn(self._result_or_error, agent_id, method, params, timeout)
                 for agent_id in targets}
        gevent.joinall(list(calls.values()))
        results: dict[str, rpc.R | Exception] = {agent_id: greenlet.value for agent_id, greenlet in calls.items()}
        return results

    def _result_or_error(self, agent_id: str, method: rpc.Method[rpc.P, rpc.R], params: rpc.Params[rpc.P],
                         timeout: float | None) -> rpc.R | Exception:
        try:
            return self.call(agent_id, method, params, timeout)
        except Exception as exc:  # reported per agent to the caller
            return exc

    def _call(self, route: CallAgent | CallAny, call: Call[rpc.P, rpc.R], timeout: float | None) -> rpc.R:
        """Have the registry route *call*, then wait for its reply (or for *timeout*, the method's by default)."""
        started = time.monotonic()
        outcome = "ok"
        try:
            try:
                self._registry.tell(route)
            except pykka.ActorDeadError:
                raise AgentUnavailable("the agent plane is stopped") from None
            limit = call.method.timeout if timeout is None else timeout
            try:
                result: rpc.R = call.reply.get(timeout=limit)  # what the connection decoded as the method's R
                return result
            except gevent.Timeout:
                name = call.agent.name if call.agent else "(not routed yet)"
                call.reply.set_exception(AgentTimeout(f"agent {name} did not answer {call.method.wire_name} "
                                                      f"within {limit:g}s"))
                if call.connection is not None:
                    try:
                        call.connection.tell(Abandon(call))
                    except pykka.ActorDeadError:
                        pass
                raise call.reply.exception from None
        except AgentTimeout:
            outcome = "timeout"
            raise
        except AgentDisconnected:
            outcome = "disconnected"
            raise
        except Exception:
            outcome = "failed"
            raise
        finally:
            self._observe_rpc(call.method.wire_name, outcome, time.monotonic() - started)

    # -- upkeep --------------------------------------------------------------------------

    def _tick_forever(self) -> None:
        while True:
            gevent.sleep(self.settings.ping_interval / PING_SLICES)
            try:
                self._registry.tell(TICK)
            except pykka.ActorDeadError:
                return

    def stop(self) -> None:
        self._ticker.kill(block=False)
        self._welcomer.kill(block=False)  # post-connection work must not outlive the database client
        if self._registry.is_alive():
            self._registry.stop(timeout=10)
