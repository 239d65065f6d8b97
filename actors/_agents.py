"""The agent plane: one actor per connected agent, and a registry actor that tracks them.

An :class:`_AgentConnection` owns its socket and its calls: it alone writes to the
socket (requests, pongs, pings, close), sends one request at a time (the Go
agents answer each request from its own goroutine and must never have two
replies racing on their socket), matches replies by id, and fails every waiting
caller at once when the connection ends. The connection's reader is the greenlet
of the upgraded HTTP request; it only hands frames to the actor (a protocol error
or the peer's close included, with the close code the actor sends), yields to the
other greenlets after each frame, and returns only once the actor has closed the
socket.

What one agent may cost is bounded: frames that are no use (replies matching no
call, messages that are not JSON replies, requests, text) are counted, and past
``max_garbage`` of them within ``garbage_window`` seconds the connection is closed
with 1008 (policy violation); they are logged at most once per window and agent,
with the count of those not logged. An agent so closed is refused (429, before the
upgrade) for one more window: dialling again at once cannot buy it a fresh budget.

The :class:`_Registry` maps agent ids to connection actors. A reconnect replaces
the old connection, which is closed with code 4000; an unregistration counts only
if it comes from the connection that is current, so a late one from a replaced
connection cannot remove its successor.
"""

from __future__ import annotations

import collections
import logging
import random
import time
import typing
from dataclasses import dataclass, field, replace

import gevent
import gevent.event
import gevent.pool
import pykka

from actors._transport import (
    BINARY,
    DEAD,
    GOING_AWAY,
    NORMAL,
    PING,
    POLICY_VIOLATION,
    REPLACED,
    TEXT,
    Frame,
    Transport,
    TransportClosed,
)
from kahuna import rpc
from kahuna.errors import AgentCallFailed, AgentDisconnected, AgentTimeout, AgentUnavailable

log = logging.getLogger(__name__)


#: Agents whose post-connection work runs at once (the others wait their turn).
POST_CONNECTION_CONCURRENCY = 8
#: Seconds the reader waits, once the connection ends, for the actor to send its close frame.
CLOSE_WAIT = 5.0
#: The agents are pinged in this many slices spread over the ping interval, not all at once:
#: with 10,000 agents one burst of pings (and pongs) would stall every call for a second.
PING_SLICES = 9


@dataclass(frozen=True)
class AgentSettings:
    ping_interval: float = 9.0
    # No frame from the agent (pong or anything) for this long: the connection is dead.
    dead_after: float = 30.0
    max_message_bytes: int = 16 << 20
    # Useless frames allowed within garbage_window seconds; one more closes the connection (1008).
    max_garbage: int = 20
    garbage_window: float = 10.0


@dataclass(frozen=True)
class AgentInfo:
    """A connected agent, as the registry knows it."""

    id: str
    type: str
    name: str
    remote: str = ""
    connected_at: float = field(default_factory=time.time)
    version: str = ""
    methods: tuple[str, ...] = ()


# -- messages ---------------------------------------------------------------------


@dataclass(eq=False)
class _Call:
    method: rpc.Method
    params: dict[str, typing.Any]
    reply: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)


@dataclass(frozen=True)
class _Abandon:
    call: _Call


@dataclass(frozen=True)
class _Inbound:
    frame: Frame


@dataclass(frozen=True)
class _Ended:
    reason: str


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


class _Tick:
    pass


_TICK = _Tick()


# -- one connection -------------------------------------------------------------------


class _AgentConnection(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, info: AgentInfo, transport: Transport, registry: pykka.ActorRef, settings: AgentSettings,
                 on_abuse: typing.Callable[[str], None] = lambda agent_id: None):
        super().__init__()
        self._info = info
        self._on_abuse = on_abuse
        self._transport = transport
        self._registry = registry
        self._settings = settings
        self._next_id = 0
        self._in_flight: tuple[int, _Call] | None = None
        self._queue: collections.deque[_Call] = collections.deque()
        self._last_heard = time.monotonic()
        # Useless frames in the current window, when it started; log lines withheld, when the next may go.
        self._garbage = 0
        self._garbage_since = self._last_heard
        self._unlogged = 0
        self._next_log = 0.0
        self._ended = False

    def on_receive(self, message: typing.Any) -> typing.Any:
        if isinstance(message, _Call):
            self._queue.append(message)
            self._send_next()
        elif isinstance(message, _Inbound):
            if not self._ended:  # frames the reader handed over before the end are not looked at
                self._on_frame(message.frame)
        elif isinstance(message, _Abandon):
            self._abandon(message.call)
        elif message is _TICK:
            self._on_tick()
        elif isinstance(message, _Close):
            self._end(message.reason, close_code=message.code)
        elif isinstance(message, _Ended):
            self._end(message.reason)
        return None

    def _send_next(self) -> None:
        while self._in_flight is None and self._queue and not self._ended:
            call = self._queue.popleft()
            if call.reply.ready():
                continue  # its caller gave up while it waited
            request_id = self._next_id
            self._next_id += 1
            try:
                message = rpc.request_message(request_id, call.method, call.params)
            except rpc.ParamsError as exc:
                call.reply.set_exception(exc)
                continue
            try:
                self._transport.send_binary(message)
            except TransportClosed:
                self._queue.appendleft(call)
                self._end("write failed")
                return
            self._in_flight = (request_id, call)

    def _on_frame(self, frame: Frame) -> None:
        self._last_heard = time.monotonic()
        if frame.kind == PING:
            self._send_control(lambda: self._transport.send_pong(frame.data))
        elif frame.kind == BINARY:
            self._on_message(frame.data)
        elif frame.kind == TEXT:
            # The Go agents and Kahuna exchange binary messages only; text is dropped, as they do.
            self._count_garbage("text message")

    def _on_message(self, data: bytes) -> None:
        try:
            reply = rpc.parse_reply(data)
        except rpc.RpcError as exc:
            self._count_garbage(str(exc))
            return
        if self._in_flight is None or reply.id != self._in_flight[0]:
            self._count_garbage(f"reply (id {reply.id}) matching no waiting call (late, after a timeout?)")
            return
        _, call = self._in_flight
        self._in_flight = None
        if not call.reply.ready():
            if reply.error is not None:
                call.reply.set_exception(AgentCallFailed(
                    f"{call.method.wire_name} failed on agent {self._info.name}: {reply.error}"))
            else:
                try:
                    call.reply.set(call.method.decode_result(reply.result))
                except rpc.RpcError as exc:
                    call.reply.set_exception(AgentCallFailed(f"agent {self._info.name}: {exc}"))
        self._send_next()

    def _count_garbage(self, what: str) -> None:
        now = time.monotonic()
        window = self._settings.garbage_window
        if now - self._garbage_since >= window:
            self._garbage, self._garbage_since = 0, now
        self._garbage += 1
        if self._garbage > self._settings.max_garbage:
            self._on_abuse(self._info.id)
            self._end(f"over {self._settings.max_garbage} useless frames within {window:g}s (the last: {what}; "
                      f"{self._unlogged} not logged)", close_code=POLICY_VIOLATION)
            return
        if now < self._next_log:
            self._unlogged += 1
            return
        self._next_log = now + window
        unlogged, self._unlogged = self._unlogged, 0
        log.warning("agent %s sent a %s; dropped%s", self._info.id, what,
                    f" ({unlogged} more useless frames not logged since the last line)" if unlogged else "")

    def _abandon(self, call: _Call) -> None:
        if self._in_flight is not None and self._in_flight[1] is call:
            self._in_flight = None
            self._send_next()
        elif call in self._queue:
            self._queue.remove(call)

    def _on_tick(self) -> None:
        if time.monotonic() - self._last_heard > self._settings.dead_after:
            self._end(f"no frame for {self._settings.dead_after:.0f}s", close_code=DEAD)
            return
        self._send_control(self._transport.send_ping)

    def _send_control(self, send: typing.Callable[[], None]) -> None:
        try:
            send()
        except TransportClosed:
            self._end("write failed")

    def _end(self, reason: str, close_code: int | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        log.info("agent %s (%s) disconnected: %s", self._info.id, self._info.type, reason)
        self._transport.close(close_code or NORMAL, reason)
        error = AgentDisconnected(f"agent {self._info.name} disconnected: {reason}")
        pending = [self._in_flight[1]] if self._in_flight else []
        for call in [*pending, *self._queue]:
            if not call.reply.ready():
                call.reply.set_exception(error)
        self._in_flight = None
        self._queue.clear()
        try:
            self._registry.tell(_Unregister(self._info.id, self.actor_ref))
        except pykka.ActorDeadError:
            pass  # the plane is stopping
        self.stop()


# -- the registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Register:
    info: AgentInfo
    ref: pykka.ActorRef


@dataclass(frozen=True)
class _Unregister:
    agent_id: str
    ref: pykka.ActorRef


@dataclass(frozen=True)
class _SetCapabilities:
    agent_id: str
    ref: pykka.ActorRef
    version: str
    methods: tuple[str, ...]


@dataclass(frozen=True)
class _Lookup:
    agent_id: str


@dataclass(frozen=True)
class _Disconnect:
    agent_id: str
    code: int
    reason: str


class _ListAgents:
    pass


@dataclass
class _Entry:
    info: AgentInfo
    ref: pykka.ActorRef
    slice: int = 0


class _Registry(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self._agents: dict[str, _Entry] = {}
        self._registered = 0  # round-robin over the ping slices
        self._ticks = 0

    def on_receive(self, message: typing.Any) -> typing.Any:
        if isinstance(message, _Register):
            previous = self._agents.get(message.info.id)
            self._registered += 1
            self._agents[message.info.id] = _Entry(message.info, message.ref, self._registered % PING_SLICES)
            if previous is not None:
                previous.ref.tell(_Close(REPLACED, "replaced by a new connection of the same agent"))
            return None
        if isinstance(message, _Unregister):
            entry = self._agents.get(message.agent_id)
            if entry is not None and entry.ref == message.ref:
                del self._agents[message.agent_id]
            return None
        if isinstance(message, _SetCapabilities):
            entry = self._agents.get(message.agent_id)
            if entry is not None and entry.ref == message.ref:
                entry.info = replace(entry.info, version=message.version, methods=message.methods)
                return entry.info
            return None
        if isinstance(message, _Lookup):
            entry = self._agents.get(message.agent_id)
            return (entry.info, entry.ref) if entry else None
        if isinstance(message, _Disconnect):
            entry = self._agents.get(message.agent_id)
            if entry is None:
                return False
            entry.ref.tell(_Close(message.code, message.reason))
            return True
        if isinstance(message, _ListAgents):
            return [entry.info for entry in self._agents.values()]
        if message is _TICK:
            # One slice per tick: each agent is ticked once per ping interval.
            current = self._ticks % PING_SLICES
            self._ticks += 1
            for entry in self._agents.values():
                if entry.slice == current:
                    entry.ref.tell(_TICK)
        return None

    def on_stop(self) -> None:
        for entry in self._agents.values():
            entry.ref.tell(_Close(NORMAL, "Kahuna is stopping"))
        self._agents.clear()


# -- the facade --------------------------------------------------------------------------


class AgentPlane:
    """Connected agents and the calls to them; implements :class:`kahuna.rpc.AgentGateway`."""

    def __init__(self, settings: AgentSettings | None = None,
                 on_connected: typing.Callable[[AgentInfo], None] | None = None,
                 observe_rpc: typing.Callable[[str, str, float], None] | None = None):
        self.settings = settings or AgentSettings()
        self._on_connected = on_connected
        # (method, outcome, seconds) of every call: ok, failed, timeout or disconnected.
        self._observe_rpc = observe_rpc or (lambda method, outcome, seconds: None)
        # After a restart or a failover every agent reconnects at once; their post-connection
        # work (database writes, scans) is admitted a few at a time so that the database is not
        # swamped, while the sockets themselves are served (and pinged) at once.
        self._welcomes = gevent.pool.Pool(POST_CONNECTION_CONCURRENCY)
        self._registry = _Registry.start()
        self._ticker = gevent.spawn(self._tick_forever)
        # Agents closed for abuse, and until when (monotonic) their handshakes are refused.
        self._cooling: dict[str, float] = {}

    def set_on_connected(self, hook: typing.Callable[[AgentInfo], None]) -> None:
        self._on_connected = hook

    # -- connections ---------------------------------------------------------------

    def serve(self, info: AgentInfo, websocket: typing.Any) -> None:
        """Run one agent connection until it ends; called from the upgraded request's greenlet."""
        transport = Transport(websocket, self.settings.max_message_bytes)
        connection = _AgentConnection.start(info, transport, self._registry, self.settings, self._penalise)
        self._registry.ask(_Register(info, connection), timeout=10)
        log.info("agent %s (%s %s) connected from %s", info.id, info.type, info.name, info.remote)
        welcome = gevent.spawn(self._welcome, info, connection)
        reason = "connection ended"
        code = None
        try:
            while True:
                connection.tell(_Inbound(transport.read()))
                # A flood of frames already buffered would be read without ever waiting: take turns.
                gevent.sleep(0)
        except TransportClosed as exc:
            reason, code = str(exc), exc.code
        except pykka.ActorDeadError:
            reason = "connection closed by Kahuna"
        finally:
            welcome.kill(block=False)
            try:
                # The actor sends the close frame (the reader's protocol error, or the echo of the peer's close).
                connection.tell(_Ended(reason) if code is None else _Close(code, reason))
            except pykka.ActorDeadError:
                pass
            # Once this returns, gevent-websocket would write a close frame of its own and pywsgi close the
            # socket: let the actor finish with it first, and keep the library from writing.
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

    def _welcome(self, info: AgentInfo, connection: pykka.ActorRef) -> None:
        """Ask the new agent its capabilities, record them, then run the post-connection hook."""
        try:
            capabilities = self._call_connection(info, connection, rpc.method(info.type, "Capabilities"), {})
        except AgentDisconnected:
            return
        except Exception as exc:
            log.warning("agent %s did not answer Capabilities (%s): disconnecting it", info.id, exc)
            connection.tell(_Close(POLICY_VIOLATION, "Capabilities failed"))
            return
        current = self._registry.ask(_SetCapabilities(info.id, connection, capabilities["Version"],
                                                      tuple(capabilities["Methods"])), timeout=10)
        if current is not None and self._on_connected is not None:
            self._welcomes.apply(self._run_on_connected, (current,))

    def _run_on_connected(self, info: AgentInfo) -> None:
        try:
            self._on_connected(info)
        except Exception:
            log.exception("post-connection work for agent %s failed", info.id)

    def connected(self) -> list[AgentInfo]:
        return self._registry.ask(_ListAgents(), timeout=10)

    def info(self, agent_id: str) -> AgentInfo | None:
        found = self._registry.ask(_Lookup(agent_id), timeout=10)
        return found[0] if found else None

    def connected_ids(self, agent_ids: typing.Iterable[str]) -> list[str]:
        """Those of *agent_ids* that are connected now."""
        connected = {info.id for info in self.connected()}
        return [agent_id for agent_id in agent_ids if agent_id in connected]

    def disconnect(self, agent_id: str, reason: str, code: int = NORMAL) -> bool:
        return self._registry.ask(_Disconnect(agent_id, code, reason), timeout=10)

    def disconnect_all(self, reason: str) -> int:
        """Close every agent's socket (this node turned passive: they reconnect to the active one)."""
        agents = self.connected()
        for info in agents:
            self.disconnect(info.id, reason, GOING_AWAY)
        return len(agents)

    # -- calls -----------------------------------------------------------------------

    def call(self, agent_id: str, method: rpc.Method, params: dict[str, typing.Any] | None = None,
             timeout: float | None = None) -> dict[str, typing.Any]:
        """Call *method* on the connected agent *agent_id* and return its result."""
        found = self._registry.ask(_Lookup(agent_id), timeout=10)
        if found is None:
            raise AgentUnavailable(f"agent {agent_id} is not connected")
        info, connection = found
        if info.methods and method.name not in info.methods:
            raise AgentUnavailable(f"agent {info.name} does not serve {method.wire_name}")
        return self._call_connection(info, connection, method, params or {}, timeout)

    def call_any(self, agent_ids: typing.Iterable[str], method: rpc.Method,
                 params: dict[str, typing.Any] | None = None, timeout: float | None = None) -> dict[str, typing.Any]:
        """Call *method* on one connected agent among *agent_ids* that serves it, chosen at random."""
        eligible = [agent_id for agent_id in agent_ids if self._serves(agent_id, method)]
        if not eligible:
            raise AgentUnavailable(f"no connected agent can serve {method.wire_name}")
        return self.call(random.choice(eligible), method, params, timeout)

    def broadcast(self, agent_ids: typing.Iterable[str], method: rpc.Method,
                  params: dict[str, typing.Any] | None = None,
                  timeout: float | None = None) -> dict[str, dict[str, typing.Any] | Exception]:
        """Call *method* on every agent of *agent_ids* at once; each agent's result or error."""
        targets = list(dict.fromkeys(agent_ids))
        calls = {agent_id: gevent.spawn(self._result_or_error, agent_id, method, params, timeout)
                 for agent_id in targets}
        gevent.joinall(list(calls.values()))
        return {agent_id: greenlet.value for agent_id, greenlet in calls.items()}

    def _result_or_error(self, agent_id, method, params, timeout):
        try:
            return self.call(agent_id, method, params, timeout)
        except Exception as exc:  # reported per agent to the caller
            return exc

    def _serves(self, agent_id: str, method: rpc.Method) -> bool:
        found = self._registry.ask(_Lookup(agent_id), timeout=10)
        return found is not None and found[0].type == method.agent_type and method.name in found[0].methods

    def _call_connection(self, info: AgentInfo, connection: pykka.ActorRef, method: rpc.Method,
                         params: dict[str, typing.Any], timeout: float | None = None) -> dict[str, typing.Any]:
        started = time.monotonic()
        outcome = "ok"
        try:
            return self._call_and_wait(info, connection, method, params, timeout)
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
            self._observe_rpc(method.wire_name, outcome, time.monotonic() - started)

    def _call_and_wait(self, info: AgentInfo, connection: pykka.ActorRef, method: rpc.Method,
                       params: dict[str, typing.Any], timeout: float | None) -> dict[str, typing.Any]:
        call = _Call(method, params)
        try:
            connection.tell(call)
        except pykka.ActorDeadError:
            raise AgentDisconnected(f"agent {info.name} disconnected") from None
        limit = method.timeout if timeout is None else timeout
        try:
            return call.reply.get(timeout=limit)
        except gevent.Timeout:
            call.reply.set_exception(AgentTimeout(f"agent {info.name} did not answer {method.wire_name} "
                                                  f"within {limit:g}s"))
            try:
                connection.tell(_Abandon(call))
            except pykka.ActorDeadError:
                pass
            raise call.reply.exception from None

    # -- upkeep ------------------------------------------------------------------------

    def _tick_forever(self) -> None:
        while True:
            gevent.sleep(self.settings.ping_interval / PING_SLICES)
            try:
                self._registry.tell(_TICK)
            except pykka.ActorDeadError:
                return

    def stop(self) -> None:
        self._ticker.kill(block=False)
        self._welcomes.kill(block=False)  # post-connection work must not outlive the database client
        if self._registry.is_alive():
            self._registry.stop(timeout=10)
