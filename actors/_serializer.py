"""Per-object serialization: one short-lived actor per object being changed.

An operation that reads then writes an object (a membership change, an address
allocation, a token rotation) runs inside that object's actor, so two such
operations on the same object never interleave, while operations on different
objects run concurrently. A registry actor owns the map from object key to
actor; an object actor stops once no caller holds it.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import gevent
import pykka

T = typing.TypeVar("T")

DEFAULT_TIMEOUT = 30.0


class OperationTimeout(Exception):
    """The operation did not finish in time (it may still complete)."""


@dataclass(frozen=True)
class _Run:
    function: typing.Callable[[], typing.Any]


class _ObjectActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_receive(self, message: typing.Any) -> typing.Any:
        if isinstance(message, _Run):
            try:
                return message.function()
            except gevent.Timeout as exc:
                # A gevent.Timeout is a BaseException: escaping, it would make pykka stop every actor.
                raise OperationTimeout(str(exc)) from None
        return None


@dataclass(frozen=True)
class _Acquire:
    key: str


@dataclass(frozen=True)
class _Release:
    key: str


class _RegistryActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        # key -> (actor, number of callers holding it)
        self._actors: dict[str, tuple[pykka.ActorRef, int]] = {}

    def on_receive(self, message: typing.Any) -> typing.Any:
        if isinstance(message, _Acquire):
            ref, holders = self._actors.get(message.key, (None, 0))
            if ref is None:
                ref = _ObjectActor.start()
            self._actors[message.key] = (ref, holders + 1)
            return ref
        if isinstance(message, _Release):
            ref, holders = self._actors[message.key]
            if holders > 1:
                self._actors[message.key] = (ref, holders - 1)
            else:
                del self._actors[message.key]
                ref.stop(block=False)
            return None
        if message == "size":
            return len(self._actors)
        return None

    def on_stop(self) -> None:
        for ref, _ in self._actors.values():
            ref.stop(block=False)
        self._actors.clear()


class Serializer:
    """``serializer.run("subnet:<id>", allocate, ...)`` runs *allocate* alone for that subnet."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        self._registry = _RegistryActor.start()
        self._timeout = timeout

    def run(self, key: str, function: typing.Callable[..., T], *args: typing.Any, **kwargs: typing.Any) -> T:
        ref: pykka.ActorRef = self._registry.ask(_Acquire(key), timeout=self._timeout)
        try:
            return ref.ask(_Run(lambda: function(*args, **kwargs)), timeout=self._timeout)
        except pykka.Timeout:
            raise OperationTimeout(f"operation on {key} did not finish within {self._timeout:.0f}s") from None
        finally:
            self._registry.tell(_Release(key))

    def active_objects(self) -> int:
        return self._registry.ask("size", timeout=self._timeout)

    def stop(self) -> None:
        if self._registry.is_alive():
            self._registry.stop(timeout=self._timeout)
