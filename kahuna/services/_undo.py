"""Undo: the steps that take back a multi-step operation that failed half-way.

FerretDB (and MongoDB without transactions) cannot roll back several documents
and agents at once, so each step that changed something registers its inverse;
if a later step fails, the inverses run newest first, each one attempted even if
another fails (their failures are logged: the original error is what the caller
must see).
"""

from __future__ import annotations

import logging
import types
import typing

log = logging.getLogger(__name__)


class Undo:
    def __init__(self) -> None:
        self._steps: list[tuple[str, typing.Callable[[], typing.Any]]] = []

    def __enter__(self) -> Undo:
        return self

    def push(self, what: str, step: typing.Callable[[], typing.Any]) -> None:
        self._steps.append((what, step))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: types.TracebackType | None) -> None:
        if exc_type is None:
            return
        for what, step in reversed(self._steps):
            try:
                step()
            except Exception:  # noqa: BLE001 - keep undoing; the original error is re-raised
                log.exception("rollback step failed: %s", what)
        self._steps.clear()
