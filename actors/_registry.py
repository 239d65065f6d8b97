"""The registry of connected agents: which connection actor serves which agent id.

Calls are routed through it: a caller tells it the call (:class:`~actors._messages.CallAgent`,
or :class:`~actors._messages.CallAny` for one agent among several that serves the method),
and it forwards the call to the connection, or fails it at once; the caller then waits for
the reply alone.

Every query costs what it asks, not what is connected: a lookup is one dict access,
"which of these ids are connected" and "one connected agent of these that serves this
method" walk only the ids given, counts by type are kept as agents come and go, and a
tick walks one slice of the agents (each agent is in one of ``PING_SLICES`` slices, and
one slice is ticked per ``ping_interval / PING_SLICES``: with 10,000 agents a burst of
pings, and of pongs, would hold every call behind it).

A reconnect replaces the old connection, which is closed with code 4000; an
unregistration counts only if it comes from the connection that is current, so a late
one from a replaced connection cannot remove its successor.
"""

from __future__ import annotations

import collections
import random
import typing
from dataclasses import dataclass

import pykka

from actors._connection import AgentConnection, AgentInfo
from actors._gevent import GeventActor
from actors._messages import (
    TICK,
    AnyCall,
    CallAgent,
    CallAny,
    Close,
    ConnectedAmong,
    CountByType,
    Disconnect,
    DisconnectAll,
    ListAgents,
    Lookup,
    Register,
    SetCapabilities,
    Tick,
    Unregister,
)
from actors._transport import NORMAL, REPLACED
from kahuna.errors import AgentDisconnected, AgentUnavailable

#: Slices of the agents ticked in turn over one ping interval (see the module's docstring).
PING_SLICES = 90


@dataclass(slots=True)
class _Entry:
    info: AgentInfo
    ref: pykka.ActorRef[AgentConnection]
    slice: int


class AgentRegistry(GeventActor):
    def __init__(self, on_welcomed: typing.Callable[[AgentInfo], None]):
        super().__init__()
        # Called (it must not block) with each agent whose Capabilities were recorded.
        self._on_welcomed = on_welcomed
        self._agents: dict[str, _Entry] = {}
        self._slices: list[dict[str, pykka.ActorRef[AgentConnection]]] = [{} for _ in range(PING_SLICES)]
        self._by_type: collections.Counter[str] = collections.Counter()
        # One tuple per distinct list of methods (agents of a type and version serve the same): shared, not copied.
        self._method_lists: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._registered = 0  # round-robin over the slices
        self._ticks = 0

    def on_receive(self, message: typing.Any) -> typing.Any:  # noqa: C901, PLR0911 - one branch per message
        if isinstance(message, CallAgent):
            self._route(message)
        elif isinstance(message, CallAny):
            self._route_any(message)
        elif isinstance(message, Lookup):
            entry = self._agents.get(message.agent_id)
            return entry.info if entry else None
        elif isinstance(message, ConnectedAmong):
            return [agent_id for agent_id in message.agent_ids if agent_id in self._agents]
        elif isinstance(message, Tick):
            self._tick()
        elif isinstance(message, Register):
            self._register(message)
        elif isinstance(message, Unregister):
            entry = self._agents.get(message.agent_id)
            if entry is not None and entry.ref == message.ref:
                self._remove(entry)
        elif isinstance(message, SetCapabilities):
            entry = self._agents.get(message.agent_id)
            if entry is not None and entry.ref == message.ref:
                methods = self._method_lists.setdefault(message.methods, message.methods)
                entry.info = AgentInfo(entry.info.id, entry.info.type, entry.info.name, entry.info.remote,
                                       entry.info.connected_at, message.version, methods)
                self._on_welcomed(entry.info)
        elif isinstance(message, Disconnect):
            entry = self._agents.get(message.agent_id)
            if entry is None:
                return False
            entry.ref.tell(Close(message.code, message.reason))
            return True
        elif isinstance(message, DisconnectAll):
            return self._close_all(message.code, message.reason)
        elif isinstance(message, CountByType):
            return dict(self._by_type)
        elif isinstance(message, ListAgents):
            return [entry.info for entry in self._agents.values()]
        return None

    def _register(self, message: Register) -> None:
        previous = self._agents.get(message.info.id)
        if previous is not None:
            self._remove(previous)
            previous.ref.tell(Close(REPLACED, "replaced by a new connection of the same agent"))
        self._registered += 1
        entry = _Entry(message.info, message.ref, self._registered % PING_SLICES)
        self._agents[message.info.id] = entry
        self._slices[entry.slice][message.info.id] = message.ref
        self._by_type[message.info.type] += 1

    def _remove(self, entry: _Entry) -> None:
        del self._agents[entry.info.id]
        del self._slices[entry.slice][entry.info.id]
        self._by_type[entry.info.type] -= 1
        if not self._by_type[entry.info.type]:
            del self._by_type[entry.info.type]

    def _route(self, message: CallAgent) -> None:
        call = message.call
        entry = self._agents.get(message.agent_id)
        if entry is None:
            call.reply.set_exception(AgentUnavailable(f"agent {message.agent_id} is not connected"))
        elif entry.info.methods and call.method.name not in entry.info.methods:
            call.reply.set_exception(AgentUnavailable(f"agent {entry.info.name} does not serve "
                                                      f"{call.method.wire_name}"))
        else:
            self._forward(entry, call)

    def _route_any(self, message: CallAny) -> None:
        method = message.call.method
        eligible = [entry for entry in map(self._agents.get, message.agent_ids)
                    if entry is not None and entry.info.type == method.agent_type and method.name in entry.info.methods]
        if eligible:
            self._forward(random.choice(eligible), message.call)
        else:
            message.call.reply.set_exception(AgentUnavailable(f"no connected agent can serve {method.wire_name}"))

    @staticmethod
    def _forward(entry: _Entry, call: AnyCall) -> None:
        call.agent, call.connection = entry.info, entry.ref
        try:
            entry.ref.tell(call)
        except pykka.ActorDeadError:  # it ended; its unregistration is on its way
            call.reply.set_exception(AgentDisconnected(f"agent {entry.info.name} disconnected"))

    def _tick(self) -> None:
        current = self._slices[self._ticks % PING_SLICES]
        self._ticks += 1
        for ref in current.values():
            ref.tell(TICK)

    def _close_all(self, code: int, reason: str) -> int:
        entries = list(self._agents.values())
        for entry in entries:
            self._remove(entry)
            entry.ref.tell(Close(code, reason))
        return len(entries)

    def on_stop(self) -> None:
        self._close_all(NORMAL, "Kahuna is stopping")
