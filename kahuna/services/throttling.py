"""Limits on guessing: failed logins and password-reset requests, per account and per client address."""

from __future__ import annotations

import math
import typing

from kahuna.errors import TooManyRequests


class AttemptLimiter(typing.Protocol):
    """Sliding-window counters (implemented by ``actors.Throttle``)."""

    def record(self, *keys: str) -> None: ...

    def wait(self, key: str, limit: int, window: float) -> float: ...

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

    def check(self, account: str, source: str) -> None:
        account_key, source_key = self._keys(account, source)
        wait = max(self.limiter.wait(account_key, self.per_account, self.window),
                   self.limiter.wait(source_key, self.per_source, self.window))
        if wait > 0:
            raise TooManyRequests(f"too many {self.what} attempts: retry in {math.ceil(wait)} seconds",
                                  retry_after=math.ceil(wait))

    def count(self, account: str, source: str) -> None:
        self.limiter.record(*self._keys(account, source))

    def forget(self, account: str) -> None:
        self.limiter.clear(self._keys(account, "")[0])
