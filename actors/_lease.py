"""The lease keeper: what holds (or waits for) the HA lease of this node, on a thread of its own.

It steps the node's :class:`kahuna.ha.Contender` when each step is due: the holder
renews every third of the lease's lifetime, a passive node checks as often and right
when the grant it watches will have been silent for a whole lease.

**Its own OS thread and database connection.** Renewals must not wait for the hub: when
10,000 agents reconnect at once, thousands of greenlets are ready to run, and a renewal
queued behind them came seconds late, past the lease: the node turned passive, dropped
its agents, and the storm began again. The keeper therefore runs in a native thread
(with a gevent hub of its own, and a database client opened in that thread), which the
interpreter schedules every few milliseconds however busy the main hub is. Only the
process being stopped outright (SIGSTOP, a frozen VM) or the database being away delays a
renewal; then the node turns passive by itself (``HaRole.is_active`` reads the monotonic
clock), as fencing requires.

It publishes an immutable :class:`HaRole` that request handlers read (a reference swap, no
lock). The callbacks run on the main hub, each in a greenlet of its own: before it
publishes an active role (taking the lease, or renewing it after a lapse) the keeper has
``on_gained`` run there and waits for it (the node prepares to write); on losing the
lease to another node it has ``on_lost`` run (disconnect the agents), so that they go to
the new active node.
"""

from __future__ import annotations

import collections
import logging
import time
import typing
from dataclasses import dataclass

import gevent
from gevent.monkey import get_original

from kahuna.ha import RENEW_FRACTION, Contender, LeaseStore

log = logging.getLogger(__name__)

#: After a failed step (the database did not answer), retry this share of the lease later.
_RETRY_FRACTION = 1 / 6
#: Seconds between two looks at the keeper's commands (its thread polls; it must keep its own hub running).
_POLL = 0.02

_start_native_thread = get_original("_thread", "start_new_thread")


@dataclass(frozen=True)
class HaRole:
    active: bool
    token: int = 0
    holder: str = ""
    valid_until: float = 0.0  # time.monotonic()

    def is_active(self) -> bool:
        return self.active and time.monotonic() < self.valid_until


class _OnMainHub:
    """A callback run in a greenlet of the main hub, from the keeper's thread; ``done`` once it returned."""

    def __init__(self, hub: typing.Any, function: typing.Callable[[], None]):
        self.done = False
        self.error: BaseException | None = None
        self._function = function
        hub.loop.run_callback_threadsafe(gevent.spawn, self._run)

    def _run(self) -> None:
        try:
            self._function()
        except BaseException as exc:  # noqa: BLE001 - handed to the keeper's thread
            self.error = exc
        finally:
            self.done = True

    def wait(self) -> None:
        while not self.done:
            gevent.sleep(_POLL)  # the keeper thread's own hub


class LeaseKeeper:
    """``LeaseKeeper(open_store, node, ttl, on_lost, on_gained)``; ``role`` is this node's role now.

    *open_store* is called in the keeper's thread, to open the store on a database client of its own.
    """

    def __init__(self, open_store: typing.Callable[[], LeaseStore], node: str, ttl: float,
                 on_lost: typing.Callable[[], None], on_gained: typing.Callable[[int], None] | None = None):
        self.role = HaRole(active=False)
        self.node, self.ttl = node, ttl
        self._open_store = open_store
        self._on_lost, self._on_gained = on_lost, on_gained
        self._main_hub = gevent.get_hub()
        # Commands to the keeper's thread ("step", "pause", "release", "abandon"); deques are thread-safe.
        self._commands: collections.deque[str] = collections.deque()
        self._steps = 0  # steps done, for step_now()
        self._ended = False
        self._paused = False
        _start_native_thread(self._run, ())
        # The first step before serving: a node alone (or first) is active from the start.
        self._wait_for(lambda: self._steps >= 1 or self._ended, 30)

    def is_active(self) -> bool:
        return self.role.is_active()

    # -- the keeper's thread ---------------------------------------------------------------

    def _run(self) -> None:
        store = None
        try:
            store = self._open_store()
            contender = Contender(store, self.node, self.ttl)
            due = 0.0
            while True:
                command = self._commands.popleft() if self._commands else None
                if command in ("release", "abandon"):
                    self._give_up(contender, release=command == "release")
                    return
                if command == "pause":
                    self._paused = True
                if command == "step" or (not self._paused and time.monotonic() >= due):
                    delay = self._step(contender)
                    due = time.monotonic() + min(max(delay, 0.01), self.ttl * RENEW_FRACTION)
                    self._steps += 1
                gevent.sleep(_POLL)
        except BaseException:  # noqa: BLE001 - the thread must not die silently
            log.exception("the HA lease keeper stopped")
            self.role = HaRole(active=False, token=self.role.token)
        finally:
            self._ended = True
            if store is not None:
                store.close()

    def _step(self, contender: Contender) -> float:
        """One step; returns the seconds until the next one is due."""
        held, was_active = self.role.active, self.role.is_active()
        try:
            step = contender.step()
        except Exception as exc:  # noqa: BLE001 - the database is away: stay what the local lease says
            log.warning("HA lease not renewed: %s", exc)
            return self.ttl * _RETRY_FRACTION
        on_gained = self._on_gained
        if step.mine and not was_active and on_gained is not None:
            token = step.token
            gained = _OnMainHub(self._main_hub, lambda: on_gained(token))  # the token it will write under
            gained.wait()
            if gained.error is not None:
                log.error("HA lease held but this node could not become active (%r); retrying", gained.error)
                self.role = HaRole(False, step.token, self.node)
                if held:
                    _OnMainHub(self._main_hub, self._on_lost)
                return step.next_step
        if step.mine:
            self.role = HaRole(True, step.token, self.node, step.valid_until)
            if not held:
                log.warning("this node is now ACTIVE (lease token %d)", step.token)
            elif step.lapsed_for:
                log.warning("HA lease renewed %.1f s after it lapsed (process stopped or database slow)",
                            step.lapsed_for)
        else:
            self.role = HaRole(False, step.token, step.holder)
        if held and not step.mine:
            log.warning("this node is now PASSIVE (lease held by %s)", step.holder or "nobody")
            _OnMainHub(self._main_hub, self._on_lost)
        return step.next_step

    def _give_up(self, contender: Contender, release: bool) -> None:
        if release:
            try:
                contender.release()
            except Exception:  # noqa: BLE001 - best effort; the lease runs out anyway
                log.info("HA lease not released")
        contender.abandon()
        self.role = HaRole(active=False, token=self.role.token)

    # -- from the main hub -------------------------------------------------------------------

    def _wait_for(self, condition: typing.Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            gevent.sleep(_POLL)

    def pause(self) -> None:
        """Stop stepping, as a frozen process would (tests)."""
        self._commands.append("pause")

    def step_now(self) -> None:
        """One step at once, waiting for it (tests)."""
        steps = self._steps
        self._commands.append("step")
        self._wait_for(lambda: self._steps > steps or self._ended, 30)

    def stop(self, release: bool = True) -> None:
        """Stop renewing; *release* gives the lease up (clean shutdown) rather than letting it expire."""
        if not self._ended:
            self._commands.append("release" if release else "abandon")
            self._wait_for(lambda: self._ended, 10)
