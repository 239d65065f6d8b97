"""Throttling of attempts (logins, password-reset mails), one actor owning every counter."""

from __future__ import annotations

import collections
import time
import typing
from dataclasses import dataclass

import pykka

from actors._query import Query, ask


@dataclass(frozen=True)
class _Record:
    key: str


@dataclass(frozen=True)
class _Wait(Query[float]):
    key: str
    limit: int
    window: float


@dataclass(frozen=True)
class _Reserve(Query[float]):
    limits: tuple[tuple[str, int], ...]
    window: float


@dataclass(frozen=True)
class _Refund:
    key: str


@dataclass(frozen=True)
class _Clear:
    key: str


class _ThrottleActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, clock: typing.Callable[[], float]):
        super().__init__()
        self._clock = clock
        self._attempts: dict[str, collections.deque[float]] = {}

    def on_receive(self, message: typing.Any) -> typing.Any:
        now = self._clock()
        if isinstance(message, _Record):
            self._attempts.setdefault(message.key, collections.deque(maxlen=1000)).append(now)
            return None
        if isinstance(message, _Wait):
            return self._wait(message.key, message.limit, message.window, now)
        if isinstance(message, _Reserve):
            # Check every key, then count the attempt on every key, in one message: N attempts sent
            # at once cannot all pass the check before any of them is counted.
            wait = max((self._wait(key, limit, message.window, now) for key, limit in message.limits), default=0.0)
            if wait <= 0:
                for key, _ in message.limits:
                    self._attempts.setdefault(key, collections.deque(maxlen=1000)).append(now)
            return wait
        if isinstance(message, _Refund):
            attempts = self._attempts.get(message.key)
            if attempts:
                attempts.pop()
            return None
        if isinstance(message, _Clear):
            self._attempts.pop(message.key, None)
        return None

    def _wait(self, key: str, limit: int, window: float, now: float) -> float:
        attempts = self._attempts.get(key)
        if not attempts:
            return 0.0
        while attempts and attempts[0] <= now - window:
            attempts.popleft()
        if not attempts:
            del self._attempts[key]
            return 0.0
        if len(attempts) < limit:
            return 0.0
        # Blocked until enough of the window's attempts age out.
        return attempts[len(attempts) - limit] + window - now


class Throttle:
    """Sliding-window counters: ``wait(key, limit, window)`` is how long *key* must wait (0 when it need not)."""

    def __init__(self, clock: typing.Callable[[], float] = time.monotonic):
        self._actor = _ThrottleActor.start(clock)

    def record(self, *keys: str) -> None:
        for key in keys:
            self._actor.tell(_Record(key))

    def wait(self, key: str, limit: int, window: float) -> float:
        return ask(self._actor, _Wait(key, limit, window), 10)

    def reserve(self, limits: typing.Sequence[tuple[str, int]], window: float) -> float:
        """Count one attempt on each key if none is over its limit; else how long to wait (nothing counted)."""
        return ask(self._actor, _Reserve(tuple(limits), window), 10)

    def refund(self, key: str) -> None:
        """Take back the latest attempt counted on *key* (it turned out to be a success)."""
        self._actor.tell(_Refund(key))

    def clear(self, key: str) -> None:
        self._actor.tell(_Clear(key))

    def stop(self) -> None:
        if self._actor.is_alive():
            self._actor.stop(timeout=10)
