"""pykka's actor model on bare greenlets, for the actors Kahuna has by the ten thousand.

pykka 3+ dropped its ``GeventActor``. A ``ThreadingActor`` works under gevent's monkey
patching, but each one drags a thread's machinery along: a patched ``Thread`` (and the
``_DummyThread`` its greenlet is seen as), a ``queue.Queue`` built of three
``Condition``\\ s, a ``threading.Event``. That is affordable for the few long-lived actors
(the registry, the owners, the lease) and not for one actor per connected agent, at
10,000 agents. :class:`GeventActor` is the same :class:`pykka.Actor` (same ``ActorRef``,
``tell``, ``ask``, ``stop``, ``on_receive``) on gevent's own primitives: a raw greenlet,
a ``SimpleQueue`` inbox, a gevent ``Event``, and futures that are gevent ``AsyncResult``\\ s
(what pykka 1.x's ``GeventActor`` did).

Like every actor here, it needs ``gevent.monkey.patch_all()`` first: pykka's registry
lock must be gevent's.
"""

from __future__ import annotations

import queue
import sys
import typing

import gevent
import gevent.event
import gevent.queue
import pykka


class GeventFuture(pykka.Future[typing.Any]):
    """A :class:`pykka.Future` that is a gevent ``AsyncResult``: waiting on it yields to the hub."""

    def __init__(self) -> None:
        super().__init__()
        self.async_result = gevent.event.AsyncResult()

    def get(self, *, timeout: float | None = None) -> typing.Any:
        try:
            return super().get(timeout=timeout)  # a get hook (pykka's map/join) answers first
        except NotImplementedError:
            pass
        try:
            return self.async_result.get(timeout=timeout)
        except gevent.Timeout:
            raise pykka.Timeout(f"{timeout} seconds") from None

    def set(self, value: typing.Any = None) -> None:
        if self.async_result.ready():
            raise queue.Full
        self.async_result.set(value)

    def set_exception(self, exc_info: typing.Any = None) -> None:
        if self.async_result.ready():
            raise queue.Full
        exc_info = exc_info or sys.exc_info()
        self.async_result.set_exception(exc_info[1], exc_info=exc_info)


class GeventActor(pykka.Actor):
    """A :class:`pykka.Actor` run by one raw greenlet (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        # The same is_set/set/wait as threading's; the ref made by pykka's __init__ must see this one.
        self.actor_stopped = gevent.event.Event()
        self.actor_ref.actor_stopped = self.actor_stopped

    @staticmethod
    def _create_actor_inbox() -> typing.Any:
        return gevent.queue.SimpleQueue()

    @staticmethod
    def _create_future() -> pykka.Future[typing.Any]:
        return GeventFuture()

    def _start_actor_loop(self) -> None:
        gevent.spawn_raw(self._actor_loop)
