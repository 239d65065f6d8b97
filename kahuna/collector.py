"""Short pauses of the cyclic garbage collector with thousands of connected agents.

CPython's collector walks every tracked object of a generation it collects. A full
(generation 2) collection comes each time the long-lived objects have grown by a quarter
since the last one; each connected agent holds some 70 tracked objects, so with 10,000
agents every full collection walked close to a million of them: the whole process stood
still for about a second, several times during a reconnect storm.

What survives a full collection is long-lived (start-up's modules and app, connected
agents' actors and sockets): after each one, :func:`keep_long_lived_aside` moves the
survivors to the permanent generation (``gc.freeze()``), so that the next full collection
walks only what came since. Objects so set aside are still freed by reference counting
when they die. A cycle among them would not be: it would stay until the process ends.
Closed agent connections leave none (``tests/test_agent_plane.py`` checks it, and
gevent-websocket's habit of building a class each time a socket is closed is turned
off in :mod:`actors._transport`); ``kahuna_gc_frozen_objects`` in ``/metrics`` shows
how many objects are set aside, which should follow the number of connected agents.
"""

from __future__ import annotations

import gc
import typing


def _freeze_after_full_collection(phase: str, info: dict[str, typing.Any]) -> None:
    # Called by the collector itself, once the collection is over: the lists it moves are settled.
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def keep_long_lived_aside() -> None:
    """Set aside what is alive now, and after every full collection what survived it (idempotent)."""
    gc.collect()
    gc.freeze()
    if _freeze_after_full_collection not in gc.callbacks:
        gc.callbacks.append(_freeze_after_full_collection)
