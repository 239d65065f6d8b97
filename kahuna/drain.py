"""``kahuna drain KAKTUS``: move every instance off a Kaktus node in maintenance, through the running Kahuna's API.

The agents are connected to the active Kahuna, so a drain is a client of its API (``global.publicUrl`` +
``/api/v1`` and the master key ``global.apiKey``, or ``--url`` and ``--api-key``), never a second writer. It finds
the node by name or id, requires it to be in maintenance (``--enable-maintenance`` puts it there: nothing new
lands on it while it empties), then plans and commits a kMotion for each instance on it, Komputes through their
own routes: live when the agents of both nodes can, otherwise cold (shut down and restarted on the new host) if
``--allow-cold`` says so. Instances with kMotion disabled stay and are reported. One line per instance, then a
summary; the exit status is 0 only when no move failed and nothing is left on the node.
"""

from __future__ import annotations

import json
import typing
import urllib.error
import urllib.request
from dataclasses import dataclass, field

#: What the API says when a move cannot be live (kahuna.services.kmotion.LIVE_REFUSED).
LIVE_REFUSED = "released Kaktus agents do cold moves only"


class DrainError(Exception):
    """The drain cannot start (unknown node, not in maintenance, the API refused or is away)."""


class ApiError(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


class Api:
    """A minimal client of the Kowabunga API: JSON in and out, the master key, errors as :class:`ApiError`."""

    def __init__(self, url: str, api_key: str, timeout: float = 900.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def __call__(self, method: str, path: str, body: typing.Any = None) -> typing.Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers={
            "X-API-Key": self.api_key, "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the operator's URL
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                reason = json.loads(raw)["reason"]
            except (ValueError, KeyError, TypeError):
                reason = raw.decode(errors="replace")[:200] or exc.reason
            raise ApiError(exc.code, str(reason)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise DrainError(f"cannot reach the Kowabunga API at {self.url}: {getattr(exc, 'reason', exc)}") from None
        return json.loads(raw) if raw else None


@dataclass
class Report:
    moved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # kMotion disabled
    failed: list[str] = field(default_factory=list)
    left: int = 0  # instances still on the node at the end

    @property
    def complete(self) -> bool:
        """Nothing failed and nothing is left: the drain's exit status is 0."""
        return not self.failed and self.left == 0

    def summary(self) -> str:
        return (f"moved {len(self.moved)}, skipped {len(self.skipped)} (kMotion disabled), failed {len(self.failed)}; "
                f"{self.left} instance(s) left on the node")


class Drain:
    def __init__(self, api: Api, out: typing.Callable[[str], None] = print):
        self.api = api
        self.out = out
        self._names: dict[str, str] = {}

    def kaktus(self, reference: str) -> dict[str, typing.Any]:
        """The Kaktus named or identified by *reference*."""
        ids = self.api("GET", "/kaktus")
        if reference in ids:
            return {**self.api("GET", f"/kaktus/{reference}"), "id": reference}
        named = [{**kaktus, "id": kaktus_id} for kaktus_id in ids
                 for kaktus in [self.api("GET", f"/kaktus/{kaktus_id}")] if kaktus["name"] == reference]
        if len(named) > 1:  # names are unique within a zone only
            raise DrainError(f"{len(named)} Kaktus nodes are named {reference!r} (ids "
                             f"{', '.join(sorted(k['id'] for k in named))}): give the id of the one to drain")
        if not named:
            raise DrainError(f"no Kaktus named or identified {reference!r}")
        return named[0]

    def node_name(self, kaktus_id: str) -> str:
        """The node's name, or its id when it cannot be read (what it is called does not change what was done)."""
        if kaktus_id not in self._names:
            try:
                self._names[kaktus_id] = self.api("GET", f"/kaktus/{kaktus_id}")["name"]
            except (ApiError, DrainError, KeyError, TypeError):
                return kaktus_id
        return self._names[kaktus_id]

    def komputes_by_name(self) -> dict[str, str]:
        """Kompute id by name (a Kompute's name is its instance's)."""
        ids = self.api("GET", "/kompute")
        return {self.api("GET", f"/kompute/{kompute_id}")["name"]: kompute_id for kompute_id in ids}

    def run(self, reference: str, enable_maintenance: bool = False, allow_cold: bool = False) -> Report:
        kaktus = self.kaktus(reference)
        kaktus_id, name = kaktus["id"], kaktus["name"]
        if not kaktus.get("maintenance"):
            if not enable_maintenance:
                raise DrainError(f"Kaktus {name} is not in maintenance: new instances could land on it while it "
                                 f"empties (--enable-maintenance puts it there)")
            self.api("PATCH", f"/kaktus/{kaktus_id}/maintenance/enable")
            self.out(f"Kaktus {name} entered maintenance")
        instance_ids = self.api("GET", f"/kaktus/{kaktus_id}/instances")
        self.out(f"draining Kaktus {name}: {len(instance_ids)} instance(s)")
        komputes = self.komputes_by_name() if instance_ids else {}
        report = Report()
        for instance_id in instance_ids:
            try:
                instance = self.api("GET", f"/instance/{instance_id}")
            except ApiError as exc:
                report.failed.append(instance_id)
                self.out(f"  {instance_id}: failed: {exc.reason}")
                continue
            kompute_id = komputes.get(instance["name"])
            label = f"{'Kompute' if kompute_id else 'instance'} {instance['name']}"
            if instance.get("kmotion_enabled", True) is False:
                report.skipped.append(instance["name"])
                self.out(f"  {label}: skipped (kMotion disabled)")
                continue
            route = f"/kompute/{kompute_id}" if kompute_id else f"/instance/{instance_id}"
            try:
                how = self.move(route, allow_cold)
            except ApiError as exc:
                report.failed.append(instance["name"])
                self.out(f"  {label}: failed: {exc.reason}")
                continue
            report.moved.append(instance["name"])
            self.out(f"  {label}: moved {how}")
        report.left = len(self.api("GET", f"/kaktus/{kaktus_id}/instances"))
        self.out(report.summary())
        return report

    def move(self, route: str, allow_cold: bool) -> str:
        """Plan (live if possible, else cold when allowed) and commit; how and where it went."""
        try:
            plan = self.api("POST", f"{route}/kmotion/plan", {"destination": "auto", "live": True})
        except ApiError as exc:
            if exc.status != 422 or LIVE_REFUSED not in exc.reason:
                raise
            if not allow_cold:
                raise ApiError(exc.status, f"{exc.reason} (--allow-cold shuts it down and restarts it on its new "
                                           f"host)") from None
            plan = self.api("POST", f"{route}/kmotion/plan", {"destination": "auto", "live": False})
        self.api("PATCH", f"{route}/kmotion/commit", {"plan": plan["id"]})
        return f"{'live' if plan['live'] else 'cold'} to {self.node_name(plan['target'])}"
