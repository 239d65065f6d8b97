"""Owners: one short-lived actor per object being decided on.

Every check-then-act on an object (claim an address, a subnet or a disk, consume
a single-use link, delete the last superAdmin, check a quota then insert) runs in
that object's owner: the owner's mailbox is the only lock, so two such operations
on one object never interleave, while operations on different objects run
concurrently. Correctness never rests on the database's conditional updates:
FerretDB v1's are not atomic.

- An owner is held from the moment an operation is queued until the operation
  *ends*, inside the owner. A caller that stops waiting (its timeout) gets
  :class:`OperationTimeout`, but the owner stays busy with the operation until it
  finishes: no second operation on the same key can start meanwhile.
- Owners nest: an operation running in ``project:P`` may run a step in
  ``zone:Z``. Keys already held by the running chain are re-entered inline, so a
  helper that serializes on ``project:P`` can be called from inside it. Nested keys
  are always taken in the order of :data:`KEY_ORDER` (:meth:`Serializer.run_all`
  sorts them), so two chains never wait on each other in a cycle.
- Owners of shared objects (a project, a zone, a subnet...) hold their keys for
  fast work only (reads and writes of documents). Agent calls, which can take
  minutes, run outside: claim under the owner, call the agents, then commit or
  undo under the owner again. An object's own owner (``instance:<id>``...) may
  stay held while the agents delete it: nobody else needs it, and a second
  deletion waits for the first and finds it gone.

A registry actor maps each key to its owner actor and stops an owner once no
operation is queued on it.
"""

from __future__ import annotations

import threading
import typing
from dataclasses import dataclass

import gevent
import pykka

from actors._query import Query, ask, ask_later
from kahuna.errors import OperationTimeout

T = typing.TypeVar("T")
Args = typing.ParamSpec("Args")

DEFAULT_TIMEOUT = 30.0

#: The order in which nested owners are taken (by key prefix); an operation holding a key
#: only ever waits for keys of a later rank, so no two operations wait on each other.
KEY_ORDER = ("superadmins", "user", "token", "domains", "kawaii", "konvey", "kylo", "kompute", "instance", "volume",
             "project",
             "region", "nfs", "region-subnets", "vnet", "zone", "pool", "subnet", "adapter",
             # Last: a Kwarantine group is taken with its members' owners (membership) or with a zone's (a placement
             # that must honour the group), never before them.
             "kwarantine")
#: Owners of one object, held across its agents' work: their callers wait longer.
OBJECT_KEYS = ("kawaii", "konvey", "kylo", "kompute", "instance", "volume")
OBJECT_TIMEOUT = 900.0


def key_rank(key: str) -> tuple[int, str]:
    prefix = key.split(":", 1)[0]
    return (KEY_ORDER.index(prefix) if prefix in KEY_ORDER else len(KEY_ORDER), key)


# The keys held by the operation running in the current greenlet (each owner actor is a greenlet
# under gevent's monkey patching, so this is per owner).
_chain = threading.local()


def held_keys() -> frozenset[str]:
    return getattr(_chain, "keys", frozenset())


@dataclass(frozen=True)
class _Run(Query[T]):
    key: str
    function: typing.Callable[[], T]
    held: frozenset[str]


@dataclass(frozen=True)
class _Acquire(Query["pykka.ActorRef[_OwnerActor]"]):
    key: str


@dataclass(frozen=True)
class _Done:
    key: str


@dataclass(frozen=True)
class _Size(Query[int]):
    pass


class _OwnerActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, registry: pykka.ActorRef[_RegistryActor]) -> None:
        super().__init__()
        self._registry = registry

    def on_receive(self, message: typing.Any) -> typing.Any:
        if not isinstance(message, _Run):
            return None
        _chain.keys = message.held | {message.key}
        try:
            return message.function()
        except gevent.Timeout as exc:
            # A gevent.Timeout is a BaseException: escaping, it would make pykka stop every actor.
            raise OperationTimeout(str(exc)) from None
        finally:
            _chain.keys = frozenset()
            # Only now, the operation over, may the key go to the next one (or the owner stop).
            self._registry.tell(_Done(message.key))


class _RegistryActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        # key -> (owner, operations queued on it and not yet ended)
        self._owners: dict[str, tuple[pykka.ActorRef[_OwnerActor], int]] = {}

    def on_receive(self, message: typing.Any) -> typing.Any:
        if isinstance(message, _Acquire):
            ref, queued = self._owners.get(message.key, (None, 0))
            if ref is None:
                ref = _OwnerActor.start(self.actor_ref)
            self._owners[message.key] = (ref, queued + 1)
            return ref
        if isinstance(message, _Done):
            ref, queued = self._owners[message.key]
            if queued > 1:
                self._owners[message.key] = (ref, queued - 1)
            else:
                del self._owners[message.key]
                ref.stop(block=False)
            return None
        if isinstance(message, _Size):
            return len(self._owners)
        return None

    def on_stop(self) -> None:
        for ref, _ in self._owners.values():
            ref.stop(block=False)
        self._owners.clear()


class Serializer:
    """``serializer.run("subnet:<id>", allocate, ...)`` runs *allocate* alone for that subnet, in its owner."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        self._registry = _RegistryActor.start()
        self._timeout = timeout

    def run(self, key: str, function: typing.Callable[Args, T], *args: Args.args, **kwargs: Args.kwargs) -> T:
        held = held_keys()
        if key in held:
            return function(*args, **kwargs)
        if held and key_rank(key) < max(key_rank(k) for k in held):
            raise RuntimeError(f"owner {key} taken after {sorted(held)}: nested owners follow KEY_ORDER")
        owner = ask(self._registry, _Acquire(key), self._timeout)
        future = ask_later(owner, _Run(key, lambda: function(*args, **kwargs), held))
        timeout = OBJECT_TIMEOUT if key.split(":", 1)[0] in OBJECT_KEYS else self._timeout
        try:
            return future.get(timeout=timeout)
        except pykka.Timeout:
            raise OperationTimeout(f"operation on {key} did not finish within {timeout:.0f}s; "
                                   f"it goes on and may still complete") from None

    def run_all(self, keys: typing.Iterable[str], function: typing.Callable[[], T]) -> T:
        """Run *function* holding every one of *keys*, taken in :data:`KEY_ORDER`."""
        ordered = sorted(set(keys), key=key_rank)
        if not ordered:
            return function()
        head, rest = ordered[0], ordered[1:]
        return self.run(head, lambda: self.run_all(rest, function))

    def active_objects(self) -> int:
        return ask(self._registry, _Size(), self._timeout)

    def stop(self) -> None:
        if self._registry.is_alive():
            self._registry.stop(timeout=self._timeout)
