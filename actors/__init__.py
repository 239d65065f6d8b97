"""Kahuna's actors: the concurrency layer between HTTP/WebSocket handlers and the domain.

Actors own mutable state (connected agents, objects being changed), so nothing
here needs a lock. They run as pykka ``ThreadingActor`` under gevent's monkey
patching, i.e. as greenlets: ``gevent.monkey.patch_all()`` must come first.
"""

from actors._serializer import OperationTimeout, Serializer

__all__ = ["OperationTimeout", "Serializer"]
