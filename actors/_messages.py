"""The messages of the agent plane's actors: one frozen dataclass each, matched by type.

Connections (:mod:`actors._connection`) receive :class:`Call`, :class:`Abandon`,
:class:`Inbound`, :class:`Close` and :class:`Tick`; the registry (:mod:`actors._registry`)
receives the others. Replies, where there is one, are the value an ``ask`` returns: those messages are
:class:`~actors._query.Query` subclasses, parametrised by the reply's type.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

import gevent.event
import pykka

from actors._query import Query
from actors._transport import Frame
from kahuna import rpc

if typing.TYPE_CHECKING:
    from actors._connection import AgentConnection, AgentInfo


# -- to a connection -------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Call(typing.Generic[rpc.P, rpc.R]):
    """Send *method* to the agent; its result (an *R*, or an error) goes to *reply*.

    The registry, routing it, notes the agent and its connection (which the caller needs should it
    give up: see :class:`Abandon`)."""

    method: rpc.Method[rpc.P, rpc.R]
    params: rpc.Params[rpc.P]
    reply: gevent.event.AsyncResult = field(default_factory=gevent.event.AsyncResult)
    agent: AgentInfo | None = None
    connection: pykka.ActorRef[AgentConnection] | None = None


#: A call of any method: what queues and routes hold (they never look at params or results).
AnyCall: typing.TypeAlias = Call[typing.Any, typing.Any]


@dataclass(frozen=True, slots=True)
class Abandon:
    """The caller of *call* stopped waiting (its timeout)."""

    call: AnyCall


@dataclass(frozen=True, slots=True)
class Inbound:
    """A frame the reader received."""

    frame: Frame


@dataclass(frozen=True, slots=True)
class Close:
    """End the connection with a close frame of *code*."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Tick:
    """To a connection: ping the agent, or find it dead. To the registry: tick the next slice."""


TICK = Tick()


# -- to the registry ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register:
    info: AgentInfo
    ref: pykka.ActorRef[AgentConnection]


@dataclass(frozen=True, slots=True)
class Unregister:
    """Counts only if *ref* is the agent's current connection (a replaced one cannot remove its successor)."""

    agent_id: str
    ref: pykka.ActorRef[AgentConnection]


@dataclass(frozen=True, slots=True)
class SetCapabilities:
    """What the agent's Capabilities answered; the registry then hands it to post-connection work."""

    agent_id: str
    ref: pykka.ActorRef[AgentConnection]
    version: str
    methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CallAgent:
    """Route *call* to the connection of *agent_id* (or fail it: not connected, method not served)."""

    agent_id: str
    call: AnyCall


@dataclass(frozen=True, slots=True)
class CallAny:
    """Route *call* to one connected agent among *agent_ids* that serves its method, at random."""

    agent_ids: tuple[str, ...]
    call: AnyCall


@dataclass(frozen=True, slots=True)
class Lookup(Query["AgentInfo | None"]):
    """-> the agent's :class:`AgentInfo`, or None."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class ConnectedAmong(Query[list[str]]):
    """-> those of *agent_ids* that are connected, in their order."""

    agent_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Disconnect(Query[bool]):
    """-> whether the agent was connected; its connection is closed with *code*."""

    agent_id: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class DisconnectAll(Query[int]):
    """-> how many connections are being closed with *code*."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ListAgents(Query["list[AgentInfo]"]):
    """-> every connected agent's :class:`AgentInfo`."""


@dataclass(frozen=True, slots=True)
class CountByType(Query[dict[str, int]]):
    """-> ``{agent type: connected agents}``."""
