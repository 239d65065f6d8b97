"""Limits on guessing: failed logins and password-reset requests, per account and per client address; failed
instance-metadata look-ups, per client address; and on how much of it gets logged."""

from __future__ import annotations

import math
import typing

from kahuna.errors import TooManyRequests


class AttemptLimiter(typing.Protocol):
    """Sliding-window counters (implemented by ``actors.Throttle``)."""

    def reserve(self, limits: typing.Sequence[tuple[str, int]], window: float) -> float: ...

    def refund(self, key: str) -> None: ...

    def clear(self, key: str) -> None: ...


class Guard:
    """Refuses with 429 an account or a client address that has used up its attempts.

    The account key is whatever address was typed, existing or not, so a 429 tells
    nothing about which accounts exist.
    """

    def __init__(self, limiter: AttemptLimiter, what: str, per_account: int, per_source: int, window_seconds: float):
        self.limiter = limiter
        self.what = what
        self.per_account = per_account
        self.per_source = per_source
        self.window = window_seconds

    def _keys(self, account: str, source: str) -> tuple[str, str]:
        return f"{self.what}:account:{account.strip().lower()}", f"{self.what}:source:{source}"

    def reserve(self, account: str, source: str) -> None:
        """Count this attempt before it is checked, or refuse it with 429.

        Reserving first is what bounds a burst: attempts sent at once are counted one
        by one in the limiter's actor, so no more than the limit ever reach the check.
        """
        account_key, source_key = self._keys(account, source)
        wait = self.limiter.reserve(((account_key, self.per_account), (source_key, self.per_source)), self.window)
        if wait > 0:
            raise TooManyRequests(f"too many {self.what} attempts: retry in {math.ceil(wait)} seconds",
                                  retry_after=math.ceil(wait))

    def succeeded(self, account: str, source: str) -> None:
        """The reserved attempt was a success: it does not count against the address, and the account starts afresh."""
        account_key, source_key = self._keys(account, source)
        self.limiter.refund(source_key)
        self.limiter.clear(account_key)


class SourceGuard:
    """Refuses with 429 a client address that failed too often, e.g. at naming an instance to the metadata
    service. Like :class:`Guard`, an attempt is counted before it is checked (a burst cannot all reach the
    check), and one that succeeds is given back: only failures use up the address's allowance.
    """

    def __init__(self, limiter: AttemptLimiter, what: str, per_source: int, window_seconds: float):
        self.limiter = limiter
        self.what = what
        self.per_source = per_source
        self.window = window_seconds

    def _key(self, source: str) -> str:
        return f"{self.what}:source:{source}"

    def reserve(self, source: str) -> None:
        wait = self.limiter.reserve(((self._key(source), self.per_source),), self.window)
        if wait > 0:
            raise TooManyRequests(f"too many failed {self.what} attempts: retry in {math.ceil(wait)} seconds",
                                  retry_after=math.ceil(wait))

    def succeeded(self, source: str) -> None:
        self.limiter.refund(self._key(source))


class LogBudget:
    """At most *per_window* log lines of one kind per window, counted in the limiter: whoever provokes the
    lines cannot flood the log with them."""

    def __init__(self, limiter: AttemptLimiter, what: str, per_window: int, window_seconds: float):
        self.limiter = limiter
        self.key = f"log:{what}"
        self.per_window = per_window
        self.window = window_seconds

    def allow(self) -> bool:
        return self.limiter.reserve(((self.key, self.per_window),), self.window) <= 0
