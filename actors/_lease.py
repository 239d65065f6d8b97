"""The lease keeper: the actor that holds (or waits for) the HA lease of this node.

It steps the node's :class:`kahuna.ha.Contender` when each step is due: the holder
renews every third of the lease's lifetime, a passive node checks as often and right
when the grant it watches will have been silent for a whole lease. Its state changes
only inside the actor; it publishes an immutable :class:`Role` that request handlers
read (a reference swap, no lock). ``Role.is_active`` reads the monotonic clock, so a
node whose renewals stall (a starved or frozen process) turns passive by itself, with
no tick needed. Before it publishes an active role (taking the lease, or renewing it
after a lapse) it runs ``on_gained`` (the node prepares to write); on losing the lease
to another node it runs ``on_lost`` at once (disconnect the agents), so that they go to
the new active node.
"""

from __future__ import annotations

import logging
import time
import typing
from dataclasses import dataclass

import gevent
import pykka

from kahuna.ha import RENEW_FRACTION, Contender, LeaseStore

log = logging.getLogger(__name__)

#: After a failed step (the database did not answer), retry this share of the lease later.
_RETRY_FRACTION = 1 / 6


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
                 on_lost: typing.Callable[[], None], on_gained: typing.Callable[[int], None] | None):
        super().__init__()
        self.contender = Contender(store, node, ttl)
        self.node, self.ttl = node, ttl
        self.publish, self.on_lost, self.on_gained = publish, on_lost, on_gained
        self.role = Role(active=False)

    def on_receive(self, message: typing.Any) -> typing.Any:
        if message == _TICK:
            return self._tick()
        if message in (_RELEASE, _ABANDON):
            if message == _RELEASE:
                try:
                    self.contender.release()
                except Exception:  # noqa: BLE001 - best effort; the lease runs out anyway
                    log.info("HA lease not released")
            self.contender.abandon()
            self.role = Role(active=False, token=self.role.token)
            self.publish(self.role)
        return None

    def _tick(self) -> float:
        """One step; returns the seconds until the next one is due."""
        held, was_active = self.role.active, self.role.is_active()
        try:
            step = self.contender.step()
        except Exception as exc:  # noqa: BLE001 - the database is away: stay what the local lease says
            log.warning("HA lease not renewed: %s", exc)
            return self.ttl * _RETRY_FRACTION
        if step.mine and not was_active and self.on_gained is not None:
            try:
                self.on_gained(step.token)  # the fencing token it will write under
            except Exception:  # noqa: BLE001 - not ready to write: stay passive, try again at the next step
                log.exception("HA lease held but this node could not become active; retrying")
                self.role = Role(False, step.token, self.node)
                self.publish(self.role)
                if held:
                    self.on_lost()
                return step.next_step
        if step.mine:
            self.role = Role(True, step.token, self.node, step.valid_until)
            if not held:
                log.warning("this node is now ACTIVE (lease token %d)", step.token)
            elif step.lapsed_for:
                log.warning("HA lease renewed %.1f s after it lapsed (process starved or database slow)",
                            step.lapsed_for)
        else:
            self.role = Role(False, step.token, step.holder)
        self.publish(self.role)
        if held and not step.mine:
            log.warning("this node is now PASSIVE (lease held by %s)", step.holder or "nobody")
            self.on_lost()
        return step.next_step


class LeaseKeeper:
    """``LeaseKeeper(store, node, ttl, on_lost, on_gained)``; ``role`` is this node's role now."""

    def __init__(self, store: LeaseStore, node: str, ttl: float, on_lost: typing.Callable[[], None],
                 on_gained: typing.Callable[[int], None] | None = None):
        self.role = Role(active=False)
        self.ttl = ttl
        self._ref = _Keeper.start(store, node, ttl, self._publish, on_lost, on_gained)
        # The first step before serving: a node alone (or first) is active from the start.
        first = self._ref.ask(_TICK, timeout=30)
        self._ticker = gevent.spawn(self._tick_forever, first)

    def _publish(self, role: Role) -> None:
        self.role = role

    def is_active(self) -> bool:
        return self.role.is_active()

    def _tick_forever(self, delay: float) -> None:
        # One step at a time, each scheduled by the previous one: a slow step delays the next rather than
        # queueing more behind it.
        while True:
            gevent.sleep(min(max(delay, 0.01), self.ttl * RENEW_FRACTION))
            try:
                delay = self._ref.ask(_TICK)
            except pykka.ActorDeadError:
                return

    def stop(self, release: bool = True) -> None:
        """Stop renewing; *release* gives the lease up (clean shutdown) rather than letting it expire."""
        self._ticker.kill(block=False)
        if self._ref.is_alive():
            self._ref.ask(_RELEASE if release else _ABANDON, timeout=10)
            self._ref.stop(timeout=10)
