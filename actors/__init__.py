"""Kahuna's actors: the concurrency layer between HTTP/WebSocket handlers and the domain.

Actors own mutable state (connected agents, objects being changed), so nothing
here needs a lock. They are pykka actors run as greenlets: the few long-lived ones
as ``ThreadingActor`` under gevent's monkey patching, the agent plane's (one per
connected agent) as the lighter :class:`actors._gevent.GeventActor`. Either way
``gevent.monkey.patch_all()`` must come first.

The agent plane: :mod:`actors._plane` (the facade), :mod:`actors._registry`,
:mod:`actors._connection`, :mod:`actors._messages`, :mod:`actors._transport`.
"""

from actors._connection import AgentInfo, AgentSettings
from actors._lease import HaRole, LeaseKeeper
from actors._plane import AgentPlane
from actors._serializer import Serializer
from actors._throttle import Throttle
from actors._transport import GatedWebSocketHandler
from kahuna.errors import OperationTimeout

__all__ = ["AgentInfo", "AgentPlane", "AgentSettings", "GatedWebSocketHandler", "LeaseKeeper", "OperationTimeout",
           "HaRole", "Serializer", "Throttle"]
