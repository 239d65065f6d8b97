"""Typed asks: a message that expects an answer declares its type, and :func:`ask` returns that type.

pykka's ``ActorRef.ask`` answers ``Any`` (an actor may answer anything). Here each message
that is asked derives from :class:`Query` parametrised by its answer, e.g. ``class
Lookup(Query["AgentInfo | None"])``, and the actor that receives it answers that type; the
caller then gets a typed answer without a cast at every call site.
"""

from __future__ import annotations

import typing

import pykka

T = typing.TypeVar("T")


class Query(typing.Generic[T]):
    """A message whose ask answers a *T* (the receiving actor's ``on_receive`` keeps that promise)."""

    __slots__ = ()


def ask(ref: pykka.ActorRef[typing.Any], query: Query[T], timeout: float | None) -> T:
    """``ref.ask(query)``, waiting at most *timeout* seconds: the answer, or the actor's exception."""
    answer: T = ref.ask(query, block=True, timeout=timeout)
    return answer


def ask_later(ref: pykka.ActorRef[typing.Any], query: Query[T]) -> pykka.Future[T]:
    """``ref.ask(query)`` without waiting: the future of its answer."""
    future: pykka.Future[T] = ref.ask(query, block=False)
    return future
