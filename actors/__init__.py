"""Kahuna's actors: the concurrency layer between HTTP/WebSocket handlers and the domain.

Actors own mutable state (connected agents, objects being changed), so nothing
here needs a lock. They run as pykka ``ThreadingActor`` under gevent's monkey
patching, i.e. as greenlets: ``gevent.monkey.patch_all()`` must come first.
"""

from actors._agents import AgentInfo, AgentPlane, AgentSettings
from actors._lease import LeaseKeeper, Role
from actors._serializer import OperationTimeout, Serializer
from actors._throttle import Throttle
from actors._transport import GatedWebSocketHandler

__all__ = ["AgentInfo", "AgentPlane", "AgentSettings", "GatedWebSocketHandler", "LeaseKeeper", "OperationTimeout",
           "Role", "Serializer", "Throttle"]
