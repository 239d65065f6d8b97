"""The lease keeper: the actor that holds (or waits for) the HA lease of this node.

It ticks every third of the lease's lifetime: renew when active, try to take the
lease when passive. Its state changes only inside the actor; it publishes an
immutable :class:`Role` that request handlers read (a reference swap, no lock). On
losing the lease it tells its listeners at once (disconnect the agents), so that
they go to the new active node.
"""

from __future__ import annotations

import logging
import time
import typing
from dataclasses import dataclass

import gevent
import pykka

from kahuna.ha import LeaseStore

log = logging.getLogger(__name__)

#: Seconds before local expiry at which a node stops calling itself active (clock drift, slow writes).
SAFETY_MARGIN = 0.25


@dataclass(frozen=True)
class Role:
    active: bool
    token: int = 0
    holder: str = ""
    valid_until: float = 0.0  # time.monotonic()

    def is_active(self) -> bool:
        return self.active and time.monotonic() < self.valid_until


_TICK = "tick"
_RELEASE = "release"  # clean shutdown: give the lease up now
_ABANDON = "abandon"  # as if the process died: let the lease expire


class _Keeper(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, store: LeaseStore, node: str, ttl: float, publish: typing.Callable[[Role], None],
                 on_lost: typing.Callable[[], None]):
        super().__init__()
        self.store, self.node, self.ttl = store, node, ttl
        self.publish, self.on_lost = publish, on_lost
        self.role = Role(active=False)

    def on_receive(self, message: typing.Any) -> typing.Any:
        if message == _TICK:
            self._tick()
        elif message in (_RELEASE, _ABANDON):
            if message == _RELEASE and self.role.is_active():
                try:
                    self.store.release(self.node)
                except Exception:  # noqa: BLE001 - best effort; the lease expires anyway
                    log.info("HA lease not released")
            self.role = Role(active=False)
            self.publish(self.role)
        return None

    def _tick(self) -> None:
        started = time.monotonic()
        was_active = self.role.is_active()
        try:
            view = self.store.try_acquire(self.node)
        except Exception as exc:  # noqa: BLE001 - the database is away: stay what the local lease says
            log.warning("HA lease not renewed: %s", exc)
            view = None
        if view is not None and view.mine:
            self.role = Role(True, view.token, self.node, started + self.ttl * (1 - SAFETY_MARGIN))
            if not was_active:
                log.warning("this node is now ACTIVE (lease token %d)", view.token)
        elif view is not None:
            self.role = Role(False, view.token, view.holder)
        self.publish(self.role)
        if was_active and not self.role.is_active():
            log.warning("this node is now PASSIVE (lease held by %s)", self.role.holder or "nobody")
            self.on_lost()


class LeaseKeeper:
    """``LeaseKeeper(store, node, ttl, on_lost)``; ``role`` is this node's role now."""

    def __init__(self, store: LeaseStore, node: str, ttl: float, on_lost: typing.Callable[[], None]):
        self.role = Role(active=False)
        self._ref = _Keeper.start(store, node, ttl, self._publish, on_lost)
        self._ref.ask(_TICK, timeout=30)
        self._ticker = gevent.spawn(self._tick_forever, ttl / 3)

    def _publish(self, role: Role) -> None:
        self.role = role

    def is_active(self) -> bool:
        return self.role.is_active()

    def _tick_forever(self, interval: float) -> None:
        while True:
            gevent.sleep(interval)
            try:
                self._ref.tell(_TICK)
            except pykka.ActorDeadError:
                return

    def stop(self, release: bool = True) -> None:
        """Stop renewing; *release* gives the lease up (clean shutdown) rather than letting it expire."""
        self._ticker.kill(block=False)
        if self._ref.is_alive():
            self._ref.ask(_RELEASE if release else _ABANDON, timeout=10)
            self._ref.stop(timeout=10)
