"""One connected agent: the actor that owns its socket and its calls.

An :class:`AgentConnection` is the only writer of its socket: requests, pongs, pings and
the close frame. Its reader (the upgraded HTTP request's greenlet, in
:meth:`actors.AgentPlane.serve`) only hands it frames, and the end of the stream with the
close code to send; a close therefore never lands inside a frame being written, however
large (a ``CreateIsoVolume`` of megabytes).

**One request in flight.** The Go agents answer each request from its own goroutine,
writing to the socket without a lock of their own, so two replies must never race on
it: the next request is sent only once the previous one is answered. When a caller stops
waiting (its timeout), the slot stays busy: the agent may still be working on the request,
and its late reply is awaited, then dropped, before the next request goes. If no reply
comes within ``late_reply_grace`` seconds after the caller gave up, the connection is
recycled (closed with 4003): the agent reconnects with a fresh socket, and nothing is
left that could answer out of turn. Callers queued meanwhile time out on their own.

**Capabilities first.** The connection's first request is ``Capabilities``; its answer is
passed to the registry (:class:`~actors._registry.SetCapabilities`), which records it and
hands the agent to the plane's post-connection work. An agent that does not answer it
within the method's timeout is closed (1008).

**Bounded abuse.** Frames that are no use (replies matching no call, messages that are
not JSON replies, requests, text) are counted; past ``max_garbage`` of them within
``garbage_window`` seconds the connection is closed with 1008. They are logged at most
once per window, with the count of those not logged.

Liveness: the registry ticks each connection once per ``ping_interval``; a tick sends a
ping, or closes the connection (4002) when nothing was heard for ``dead_after`` seconds.
"""

from __future__ import annotations

import collections
import logging
import time
import typing
from dataclasses import dataclass, field

import pykka

from actors._gevent import GeventActor
from actors._messages import Abandon, AnyCall, Call, Close, Inbound, SetCapabilities, Tick, Unregister
from actors._transport import BINARY, DEAD, NORMAL, PING, POLICY_VIOLATION, TEXT, Frame, Transport, TransportClosed
from kahuna import rpc
from kahuna.errors import AgentCallFailed, AgentDisconnected

if typing.TYPE_CHECKING:
    from actors._registry import AgentRegistry

log = logging.getLogger(__name__)

#: Close code of a connection recycled because a request stayed unanswered past its timeout and grace.
UNANSWERED = 4003


@dataclass(frozen=True)
class AgentSettings:
    ping_interval: float = 9.0
    # No frame from the agent (pong or anything) for this long: the connection is dead.
    dead_after: float = 30.0
    max_message_bytes: int = 16 << 20
    # Useless frames allowed within garbage_window seconds; one more closes the connection (1008).
    max_garbage: int = 20
    garbage_window: float = 10.0
    # Seconds a request may stay unanswered after its caller gave up, before the connection is recycled.
    late_reply_grace: float = 30.0


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """A connected agent, as the registry knows it."""

    id: str
    type: str
    name: str
    remote: str = ""
    connected_at: float = field(default_factory=time.time)
    version: str = ""
    methods: tuple[str, ...] = ()


# -- state -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InFlight:
    request_id: int
    call: AnyCall
    # When the caller gave up (monotonic), if it did: from then on the slot awaits a late reply.
    abandoned_at: float | None = None


# -- the actor -----------------------------------------------------------------------------


class AgentConnection(GeventActor):
    def __init__(self, info: AgentInfo, transport: Transport, registry: pykka.ActorRef[AgentRegistry],
                 settings: AgentSettings,
                 on_abuse: typing.Callable[[str], None] = lambda agent_id: None,
                 observe_rpc: typing.Callable[[str, str, float], None] = lambda method, outcome, seconds: None):
        super().__init__()
        self._info = info
        self._on_abuse = on_abuse
        # The plane's metrics of calls: (method, outcome, seconds); here, of the Capabilities request.
        self._observe_rpc = observe_rpc
        self._transport = transport
        self._registry = registry
        self._settings = settings
        self._next_id = 0
        self._in_flight: InFlight | None = None
        self._queue: collections.deque[AnyCall] = collections.deque()
        self._last_heard = time.monotonic()
        # Useless frames in the current window, when it started; log lines withheld, when the next may go.
        self._garbage = 0
        self._garbage_since = self._last_heard
        self._unlogged = 0
        self._next_log = 0.0
        self._ended = False
        self._welcome: Call[rpc.NoParams, rpc.CapabilitiesResult] | None = Call(rpc.capabilities(info.type), None)
        self._opened_at = self._last_heard

    def on_start(self) -> None:
        assert self._welcome is not None
        self._queue.append(self._welcome)
        self._send_next()

    def on_receive(self, message: typing.Any) -> None:
        if isinstance(message, Call):
            self._queue.append(message)
            self._send_next()
        elif isinstance(message, Inbound):
            if not self._ended:  # frames the reader handed over before the end are not looked at
                self._on_frame(message.frame)
        elif isinstance(message, Abandon):
            self._abandon(message.call)
        elif isinstance(message, Tick):
            self._on_tick()
        elif isinstance(message, Close):
            self._end(message.reason, close_code=message.code)

    # -- requests --------------------------------------------------------------------------

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
            self._in_flight = InFlight(request_id, call)

    def _abandon(self, call: AnyCall) -> None:
        if self._in_flight is not None and self._in_flight.call is call:
            # The agent may still answer: the slot stays busy until it does (or the connection is recycled).
            self._in_flight = InFlight(self._in_flight.request_id, call, time.monotonic())
        elif call in self._queue:
            self._queue.remove(call)

    # -- frames ----------------------------------------------------------------------------

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
        in_flight = self._in_flight
        if in_flight is None or reply.id != in_flight.request_id:
            self._count_garbage(f"reply (id {reply.id}) matching no request in flight")
            return
        self._in_flight = None
        call = in_flight.call
        if in_flight.abandoned_at is not None:
            log.info("agent %s answered %s %.1fs after its caller gave up; reply dropped", self._info.name,
                     call.method.wire_name, time.monotonic() - in_flight.abandoned_at)
        elif reply.error is not None:
            call.reply.set_exception(AgentCallFailed(
                f"{call.method.wire_name} failed on agent {self._info.name}: {reply.error}"))
        else:
            try:
                call.reply.set(call.method.decode_result(reply.result))
            except rpc.RpcError as exc:
                call.reply.set_exception(AgentCallFailed(f"agent {self._info.name}: {exc}"))
        if call is self._welcome:
            self._welcome = None
            self._welcomed(call)
        self._send_next()

    def _welcomed(self, welcome: Call[rpc.NoParams, rpc.CapabilitiesResult]) -> None:
        took = time.monotonic() - self._opened_at
        try:
            capabilities: rpc.CapabilitiesResult = welcome.reply.get(block=False)
        except Exception as exc:
            self._observe_rpc(welcome.method.wire_name, "failed", took)
            log.warning("agent %s did not answer Capabilities (%s): disconnecting it", self._info.id, exc)
            self._end("Capabilities failed", close_code=POLICY_VIOLATION)
            return
        self._observe_rpc(welcome.method.wire_name, "ok", took)
        self._registry.tell(SetCapabilities(self._info.id, self.actor_ref, capabilities["Version"],
                                            tuple(capabilities["Methods"])))

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

    # -- upkeep ----------------------------------------------------------------------------

    def _on_tick(self) -> None:
        now = time.monotonic()
        if now - self._last_heard > self._settings.dead_after:
            self._end(f"no frame for {self._settings.dead_after:.0f}s", close_code=DEAD)
            return
        in_flight = self._in_flight
        if in_flight is not None and in_flight.abandoned_at is not None and \
                now - in_flight.abandoned_at > self._settings.late_reply_grace:
            self._end(f"{in_flight.call.method.wire_name} unanswered {self._settings.late_reply_grace:g}s after "
                      f"its caller gave up", close_code=UNANSWERED)
            return
        if self._welcome is not None and now - self._opened_at > self._welcome.method.timeout:
            self._observe_rpc(self._welcome.method.wire_name, "timeout", self._welcome.method.timeout)
            self._end("Capabilities not answered", close_code=POLICY_VIOLATION)
            return
        self._send_control(self._transport.send_ping)

    def _send_control(self, send: typing.Callable[[], None]) -> None:
        try:
            send()
        except TransportClosed:
            self._end("write failed")

    def _end(self, reason: str, close_code: int = NORMAL) -> None:
        if self._ended:
            return
        self._ended = True
        log.info("agent %s (%s) disconnected: %s", self._info.id, self._info.type, reason)
        self._transport.close(close_code, reason)  # harmless when the stream is gone already
        error = AgentDisconnected(f"agent {self._info.name} disconnected: {reason}")
        pending = [self._in_flight.call] if self._in_flight else []
        for call in [*pending, *self._queue]:
            if not call.reply.ready():
                call.reply.set_exception(error)
        self._in_flight = None
        self._queue.clear()
        try:
            self._registry.tell(Unregister(self._info.id, self.actor_ref))
        except pykka.ActorDeadError:
            pass  # the plane is stopping
        self.stop()
