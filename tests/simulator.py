"""Simulated Kowabunga agents (Kaktus, Kiwi, Kontroller) for tests and benchmarks.

A :class:`SimulatedAgent` speaks the real agents' wire: it dials ``/ws`` with the
same headers (or the signed handshake), serves the whole RPC catalog of its type
(:mod:`kahuna.rpc`) from one greenlet per request as the Go agents do, answers
pings, and keeps in-memory state (domains, volumes, DNS records, NFS exports)
so that a test can check what Kahuna asked for. Behaviours can be injected:
delays, failures, requests left unanswered, a connection dropped mid-call, guests
that ignore a graceful shutdown.

A simulated Kaktus serves and advertises exactly the methods of the released agents; the
proposed live-migration methods (``since="proposal"`` in :mod:`kahuna.rpc.kaktus`) only when
built with ``live_migration=True``, and then really moves the domain to the simulated Kaktus
that prepared the migration.

Like a Go agent, it can be made to answer each request after its own random delay
and write its replies without any lock (``Behaviour.jitter`` and
``Behaviour.unlocked_replies``): requests that overlapped would then be answered out
of order and race on the socket. It counts the requests it holds at once
(``max_outstanding``), which Kahuna's one-request-in-flight rule keeps at 1.

Requires gevent's monkey patching (the socket is websocket-client's).
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import typing
import weakref
from dataclasses import dataclass, field

import gevent
import gevent.event
import gevent.lock
import websocket

from kahuna import rpc
from kahuna.services.agents import ID_HEADER, KEY_HEADER, TYPE_HEADER, signed_headers

log = logging.getLogger(__name__)

VERSIONS = {rpc.KAKTUS: "1.0", rpc.KIWI: "1.1", rpc.KONTROLLER: "1.0"}
INSTANCE_STATES = {
    rpc.InstanceAction.AUTO_START: "Running", rpc.InstanceAction.START: "Running",
    rpc.InstanceAction.SOFT_REBOOT: "Running", rpc.InstanceAction.HARD_REBOOT: "Running",
    rpc.InstanceAction.HARD_SHUTDOWN: "Shutoff", rpc.InstanceAction.SOFT_SHUTDOWN: "Shutoff",
    rpc.InstanceAction.PM_SUSPEND: "Paused", rpc.InstanceAction.PM_RESUME: "Running",
}
#: What libvirt answers to a DomainCreate (START, AUTO_START) of a domain that runs already.
ALREADY_RUNNING = "virError(Code=55, Domain=10, Message='Requested operation is not valid: domain is already running')"
TEMPLATE_SIZE = 2 << 30
#: The simulated Kaktus agents that prepared a live migration, by the URI they answered.
MIGRATION_TARGETS: weakref.WeakValueDictionary[str, SimulatedAgent] = weakref.WeakValueDictionary()


class AgentFault(Exception):
    """An error the simulated agent answers, as a Go agent answers ``err.Error()``."""


class HandshakeFailed(Exception):
    def __init__(self, status: int):
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status


@dataclass
class Backoff:
    """Reconnection delays: exponential with full jitter, capped (so a fleet does not reconnect in step)."""

    initial: float = 0.5
    cap: float = 10.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = random.uniform(0, min(self.cap, self.initial * 2 ** self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class Behaviour:
    delays: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    # Requests received but never answered (the Go agents do this for unknown methods).
    silent: set[str] = field(default_factory=set)
    # Requests on which the agent drops its connection instead of answering.
    drop_on: set[str] = field(default_factory=set)
    # False: a hung agent, whose socket stays open but answers nothing, not even pings.
    answer_pings: bool = True
    # Requests answered only once their event is set (a late reply, at the moment the test chooses).
    hold: dict[str, gevent.event.Event] = field(default_factory=dict)
    # Each request answered after a random delay up to this (seconds), on top of delays[name].
    jitter: float = 0.0
    # Replies written without the write lock, as each Go agent goroutine writes its own.
    unlocked_replies: bool = False
    # Domains whose guest ignores a graceful shutdown (ACPI): only a forced power-off stops them.
    ignore_shutdown: set[str] = field(default_factory=set)
    # Requests carried out, then answered with this error: Kahuna learns nothing of what was done (as when an
    # answer is lost). In failures, fail_after and hold, an InstanceOperation is keyed by its name, or by
    # "InstanceOperation:<action>" for one action only.
    fail_after: dict[str, str] = field(default_factory=dict)


class SimulatedAgent:
    def __init__(self, url: str, agent_type: str, agent_id: str, api_key: str, *, signed: bool = False,
                 name: str = "", ca_file: str | None = None, fallback_urls: typing.Sequence[str] = (),
                 live_migration: bool = False):
        # With fallbacks (the nodes of a pair dialled directly, as through a virtual IP), each failed dial
        # moves to the next URL.
        self._urls = [u.rstrip("/") + "/ws" for u in (url, *fallback_urls)]
        self.url = self._urls[0]
        # wss:// with the server's certificate checked against this CA bundle (as the Go agents check it).
        self.sslopt = {"ca_certs": ca_file} if ca_file else None
        self.type = agent_type
        self.id = agent_id
        self.api_key = api_key
        self.signed = signed
        self.name = name or agent_id
        self.behaviour = Behaviour()
        # What it serves and advertises: the released methods, and the proposals only when asked.
        self.catalog = {name: method for name, method in rpc.CATALOG[agent_type].items()
                        if live_migration or method.since != rpc.kaktus.PROPOSAL}
        self.calls: list[tuple[str, dict]] = []
        # Requests received and not answered yet, and the most there ever were at once.
        self.outstanding = 0
        self.max_outstanding = 0
        self._call_event = gevent.event.Event()
        self._ws: websocket.WebSocket | None = None
        self._write_lock = gevent.lock.Semaphore()
        self._reader: gevent.Greenlet | None = None
        self._runner: gevent.Greenlet | None = None
        self.closed = gevent.event.Event()
        self.close_code: int | None = None
        self.connections = 0
        # State, as the agent would hold it.
        self.node = {"Arch": "x86_64", "Vendor": "AMD", "Model": "EPYC-Milan", "Sockets": 1, "Cores": 32,
                     "Threads": 64, "Memory": 256 << 30, "GuestEmulator": "/usr/bin/qemu-system-x86_64",
                     "GuestMachineName": "pc-q35-8.2"}
        self.pool_stats = {"Allocated": 1 << 40, "Available": 9 << 40, "Capacity": 10 << 40}
        self.instances: dict[str, dict[str, typing.Any]] = {}
        self.volumes: dict[tuple[str, str], dict[str, typing.Any]] = {}
        self.filesystems: dict[str, set[str]] = {"nfs": set()}
        self.nfs_exports: dict[str, dict[str, typing.Any]] = {}
        self.dns_zones: set[str] = set()
        self.dns_records: dict[str, dict[str, list[str]]] = {}
        self.reloads = 0

    # -- connection ------------------------------------------------------------------

    def handshake_headers(self) -> dict[str, str]:
        if self.signed:
            return signed_headers(self.api_key, self.type, self.id, secrets.token_urlsafe(24))
        return {TYPE_HEADER: self.type, ID_HEADER: self.id, KEY_HEADER: self.api_key}

    def connect(self, timeout: float = 10.0) -> SimulatedAgent:
        """Dial Kahuna and start serving; :class:`HandshakeFailed` if Kahuna refuses."""
        try:
            ws = websocket.create_connection(self.url, header=self.handshake_headers(), timeout=timeout,
                                             enable_multithread=False, skip_utf8_validation=True,
                                             sslopt=self.sslopt)
        except websocket.WebSocketBadStatusException as exc:
            raise HandshakeFailed(exc.status_code) from None
        ws.settimeout(None)
        self._ws = ws
        self.closed.clear()
        self.close_code = None
        self.connections += 1
        self._reader = gevent.spawn(self._read_forever, ws)
        return self

    def close(self, code: int = 1000) -> None:
        """Close the connection as an agent stopping does (and stop reconnecting)."""
        if self._runner is not None:
            self._runner.kill(block=False)
            self._runner = None
        ws = self._ws
        if ws is not None and ws.connected:
            try:
                with self._write_lock:
                    ws.close(status=code, timeout=1)
            except Exception:  # noqa: S110 - closing anyway
                pass
        self._drop()

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.shutdown()
            except Exception:  # noqa: S110
                pass
        self.closed.set()

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self.closed.is_set()

    def run(self, backoff: Backoff | None = None) -> SimulatedAgent:
        """Stay connected in the background: reconnect after every loss, with jittered back-off."""
        backoff = backoff or Backoff()

        def loop() -> None:
            while True:
                try:
                    self.connect()
                    backoff.reset()
                    self.closed.wait()
                except (HandshakeFailed, OSError, websocket.WebSocketException) as exc:
                    log.debug("agent %s: connection failed: %s", self.id, exc)
                    self.url = self._urls[(self._urls.index(self.url) + 1) % len(self._urls)]
                gevent.sleep(backoff.next_delay())

        self._runner = gevent.spawn(loop)
        return self

    # -- wire ------------------------------------------------------------------------

    def send_raw(self, data: bytes | str, opcode: int | None = None) -> None:
        """Send anything (tests of malformed input): bytes as binary, str as text, unless *opcode* says."""
        if opcode is None:
            opcode = websocket.ABNF.OPCODE_BINARY if isinstance(data, bytes) else websocket.ABNF.OPCODE_TEXT
        with self._write_lock:
            self._ws.send(data, opcode)

    def _read_forever(self, ws: websocket.WebSocket) -> None:
        pieces: list[bytes] = []
        try:
            while True:
                frame = ws.recv_frame()
                if frame.opcode == websocket.ABNF.OPCODE_PING:
                    if self.behaviour.answer_pings:
                        with self._write_lock:
                            ws.pong(frame.data)
                elif frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.close_code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else 1005
                    break
                elif frame.opcode in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT,
                                      websocket.ABNF.OPCODE_CONT):
                    pieces.append(frame.data)
                    if frame.fin:
                        message, pieces = b"".join(pieces), []
                        if frame.opcode != websocket.ABNF.OPCODE_TEXT:
                            gevent.spawn(self._serve_request, ws, message)
        except (websocket.WebSocketException, OSError, AttributeError):
            pass
        finally:
            if self._ws is ws:
                self._drop()

    def _serve_request(self, ws: websocket.WebSocket, message: bytes) -> None:
        try:
            request = json.loads(message)
            request_id, wire_name, raw_params = request["id"], request["method"], request["params"]
        except (ValueError, KeyError, TypeError):
            log.warning("agent %s: malformed request dropped", self.id)
            return
        # Dispatched by the wire name read off the request, as the Go agents' RPC server does.
        method = rpc.METHODS.get(wire_name) if isinstance(wire_name, str) else None
        if method is None or method.agent_type != self.type or method.name not in self.catalog or raw_params is None:
            return  # what the Go agents do: log, and never reply
        name = method.name
        params = method.decode_params(raw_params)
        self.calls.append((name, params))
        self._call_event.set()
        # A request left unanswered (silent) stays outstanding: Kahuna cannot know the agent dropped it.
        self.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        self._answer(ws, request_id, name, method, params)

    def _answer(self, ws: websocket.WebSocket, request_id: int, name: str, method: rpc.AnyMethod,
                params: dict) -> None:
        gevent.sleep(self.behaviour.delays.get(name, 0) + random.uniform(0, self.behaviour.jitter))
        keys = (f"{name}:{params.get('Action')}", name) if name == "InstanceOperation" else (name,)

        def injected(table: dict[str, typing.Any]) -> typing.Any:
            return next((table[key] for key in keys if key in table), None)

        held = injected(self.behaviour.hold)
        if held is not None:
            held.wait()
        if name in self.behaviour.drop_on:
            self._drop()
            return
        if name in self.behaviour.silent:
            return
        error = injected(self.behaviour.failures)
        result: dict[str, typing.Any] = {}
        if error is None:
            try:
                result = getattr(self, f"_rpc_{name}")(params) or {}
            except AgentFault as fault:
                error = str(fault)
            else:
                error = injected(self.behaviour.fail_after)
                result = {} if error is not None else result
        reply = json.dumps({"id": request_id, "result": method.encode_result(result), "error": error}).encode()
        self.outstanding -= 1
        try:
            if self.behaviour.unlocked_replies:
                ws.send_binary(reply)
            else:
                with self._write_lock:
                    ws.send_binary(reply)
        except (websocket.WebSocketException, OSError, AttributeError):
            pass

    # -- test helpers ----------------------------------------------------------------

    def calls_of(self, name: str) -> list[dict]:
        return [params for method, params in self.calls if method == name]

    def wait_for_call(self, name: str, count: int = 1, timeout: float = 10.0) -> dict:
        """The *count*-th call of *name*, waiting for it (bounded)."""
        try:
            with gevent.Timeout(timeout):
                while len(self.calls_of(name)) < count:
                    self._call_event.clear()
                    if len(self.calls_of(name)) >= count:
                        break
                    self._call_event.wait()
        except gevent.Timeout:
            raise AssertionError(f"agent {self.id}: no call #{count} of {name} within {timeout}s; "
                                 f"got {[method for method, _ in self.calls]}") from None
        return self.calls_of(name)[count - 1]

    # -- the catalog: every agent ----------------------------------------------------

    def _rpc_Capabilities(self, _: dict) -> dict:
        return {"Version": VERSIONS[self.type], "Methods": sorted(self.catalog)}

    # -- Kaktus: instances -------------------------------------------------------------

    def _rpc_NodeCapabilities(self, _: dict) -> dict:
        return dict(self.node)

    def _instance(self, name: str) -> dict:
        if name not in self.instances:
            raise AgentFault(f"virError(Code=42, Domain=10, Message='Domain not found: no domain with matching "
                             f"name '{name}'')")
        return self.instances[name]

    def _rpc_CreateInstance(self, p: dict) -> None:
        existing = self.instances.get(p["Name"])
        if existing is not None and existing.get("Persistent", True):
            raise AgentFault(f"domain '{p['Name']}' already exists")
        if existing is not None:  # libvirt makes a running transient domain persistent again
            existing.update(XML=p["XML"], Persistent=True)
            return
        self.instances[p["Name"]] = {"XML": p["XML"], "State": "Shutoff", "Autostart": False}

    def _rpc_GetInstance(self, p: dict) -> dict:
        return {"XML": self._instance(p["Name"])["XML"]}

    def _rpc_UpdateInstance(self, p: dict) -> None:
        self._instance(p["Name"])["XML"] = p["XML"]

    def _rpc_DeleteInstance(self, p: dict) -> None:
        instance = self._instance(p["Name"])
        if not instance.get("Persistent", True):
            raise AgentFault("virError(Code=55, Domain=10, Message='Requested operation is not valid: cannot undefine "
                             "transient domain')")
        if self._running(instance):
            # libvirt undefines a running domain's definition only: the guest runs on, transient, until stopped.
            instance.update(Persistent=False, Autostart=False)
            return
        del self.instances[p["Name"]]

    @staticmethod
    def _running(instance: dict) -> bool:
        return instance["State"] in ("Running", "Paused")

    def _rpc_GetInstanceState(self, p: dict) -> dict:
        state = self._instance(p["Name"])["State"]
        return {"State": state, "Reason": "Booted" if state == "Running" else "User"}

    def _rpc_InstanceIsRunning(self, p: dict) -> dict:
        # The released agent never errors here: an unknown domain (or libvirt away) is "not running".
        return {"Running": self.instances.get(p["Name"], {}).get("State") in ("Running", "Paused")}

    def _rpc_GetInstanceRemoteConnectionUrl(self, p: dict) -> dict:
        self._instance(p["Name"])
        return {"URL": f"spice://127.0.0.1:{5900 + sorted(self.instances).index(p['Name'])}"}

    def _rpc_InstanceOperation(self, p: dict) -> None:
        """As the released agent (kaktus/libvirt.go): AUTO_START sets autostart then starts (DomainCreate), START
        starts, and both fail with libvirt's "already running" on a running domain; the shutdowns do nothing to a
        domain that is off; a transient domain (undefined while running) is gone once it stops."""
        name, action = p["Name"], p["Action"]
        instance = self._instance(name)
        if action not in INSTANCE_STATES:
            raise AgentFault(f"unsupported instance operation: {action}")
        if action == rpc.InstanceAction.AUTO_START:
            instance["Autostart"] = True
        if action in (rpc.InstanceAction.AUTO_START, rpc.InstanceAction.START) and self._running(instance):
            raise AgentFault(ALREADY_RUNNING)
        if action in (rpc.InstanceAction.SOFT_SHUTDOWN, rpc.InstanceAction.HARD_SHUTDOWN):
            if not self._running(instance) or (action == rpc.InstanceAction.SOFT_SHUTDOWN
                                               and name in self.behaviour.ignore_shutdown):
                return
            if not instance.get("Persistent", True):
                del self.instances[name]
                return
        instance["State"] = INSTANCE_STATES[action]

    # -- Kaktus: live migration (the proposal; served with live_migration=True only) ---------------

    def _rpc_PrepareMigration(self, p: dict) -> dict:
        if p["Name"] in self.instances:
            raise AgentFault(f"domain '{p['Name']}' already exists")
        uri = f"qemu+tls://{self.name}.simulated/system"
        MIGRATION_TARGETS[uri] = self
        return {"URI": uri}

    def _rpc_MigrateInstance(self, p: dict) -> None:
        instance = self._instance(p["Name"])
        if instance["State"] != "Running":
            raise AgentFault(f"Requested operation is not valid: domain '{p['Name']}' is not running")
        target = MIGRATION_TARGETS.get(p["DestinationURI"])
        if target is None or not p["Live"]:
            raise AgentFault(f"unable to connect to server at '{p['DestinationURI']}'")
        if p["Name"] in target.instances:
            raise AgentFault(f"domain '{p['Name']}' already exists on the destination")
        # Persistent on the destination, undefined on the source; the guest never stopped.
        target.instances[p["Name"]] = {"XML": p["XML"], "State": "Running", "Autostart": False}
        del self.instances[p["Name"]]

    # -- Kaktus: storage -----------------------------------------------------------------

    def _rpc_GetStoragePoolStats(self, _: dict) -> dict:
        return dict(self.pool_stats)

    def _new_volume(self, p: dict, **fields: typing.Any) -> None:
        key = (p["Pool"], p["Volume"])
        if key in self.volumes:
            raise AgentFault(f"rbd: volume {p['Volume']} already exists")
        self.volumes[key] = fields

    def _volume(self, p: dict) -> dict:
        key = (p["Pool"], p["Volume"])
        if key not in self.volumes:
            raise AgentFault("rbd: ret=-2, No such file or directory")
        return self.volumes[key]

    def _rpc_CreateRawVolume(self, p: dict) -> None:
        self._new_volume(p, Size=p["Size"], Kind="raw")

    def _rpc_CreateTemplateVolume(self, p: dict) -> dict:
        self._new_volume(p, Size=TEMPLATE_SIZE, Kind="template", SourceURL=p["SourceURL"])
        return {"Size": TEMPLATE_SIZE}

    def _rpc_CreateOsVolume(self, p: dict) -> None:
        if (p["Pool"], p["Template"]) not in self.volumes:
            raise AgentFault(f"rbd: template {p['Template']} not found")
        self._new_volume(p, Size=p["Size"], Kind="os", Template=p["Template"])

    def _check_iso(self, p: dict) -> None:
        if p["Size"] != len(p["Content"]):
            raise AgentFault(f"mismatch between RBD volume size ({p['Size']}) and content ({len(p['Content'])})")

    def _rpc_CreateIsoVolume(self, p: dict) -> None:
        self._check_iso(p)
        self._new_volume(p, Size=p["Size"], Kind="iso", Content=p["Content"])

    def _rpc_UpdateIsoVolume(self, p: dict) -> None:
        self._check_iso(p)
        self._volume(p).update(Size=p["Size"], Content=p["Content"])

    def _rpc_GetVolumeInfos(self, p: dict) -> dict:
        return {"Size": self._volume(p)["Size"]}

    def _rpc_ResizeVolume(self, p: dict) -> None:
        self._volume(p)["Size"] = p["Size"]

    def _rpc_DeleteVolume(self, p: dict) -> None:
        self._volume(p)
        del self.volumes[(p["Pool"], p["Volume"])]

    def _rpc_ListFileSystems(self, _: dict) -> dict:
        return {"FS": sorted(self.filesystems)}

    def _filesystem(self, name: str) -> set[str]:
        if name not in self.filesystems:
            raise AgentFault(f"cephfs: no file system {name}")
        return self.filesystems[name]

    def _rpc_ListFsSubVolumes(self, p: dict) -> dict:
        return {"SubVolumes": sorted(self._filesystem(p["FS"]))}

    def _rpc_CreateFsSubVolume(self, p: dict) -> dict:
        self._filesystem(p["FS"]).add(p["SubVolume"])
        return {"Path": f"/volumes/_nogroup/{p['SubVolume']}", "BytesUsed": 0}

    def _rpc_DeleteFsSubVolume(self, p: dict) -> None:
        self._filesystem(p["FS"]).discard(p["SubVolume"])

    def _rpc_CreateNfsBackends(self, p: dict) -> None:
        self.nfs_exports[p["ID"]] = dict(p)

    def _rpc_UpdateNfsBackends(self, p: dict) -> None:
        self.nfs_exports[p["ID"]] = dict(p)

    def _rpc_DeleteNfsBackends(self, p: dict) -> None:
        self.nfs_exports.pop(p["ID"], None)

    # -- Kiwi --------------------------------------------------------------------------

    def _rpc_Reload(self, p: dict) -> None:
        self.reloads += 1
        if self.type == rpc.KIWI:
            self.dns_records = {}
            for domain in p["Domains"]:
                for record in domain["Records"]:
                    if record["Type"] == "A":
                        self.dns_records.setdefault(domain["Name"], {})[record["Name"]] = record["Addresses"]

    def _rpc_CreateDnsZone(self, p: dict) -> None:
        self.dns_zones.add(p["Domain"])

    def _rpc_DeleteDnsZone(self, p: dict) -> None:
        self.dns_zones.discard(p["Domain"])

    def _rpc_CreateDnsRecord(self, p: dict) -> None:
        records = self.dns_records.setdefault(p["Domain"], {})
        if p["Entry"] in records:
            raise AgentFault(f"record {p['Entry']}.{p['Domain']}. already exists")
        records[p["Entry"]] = p["Addresses"]

    def _rpc_UpdateDnsRecord(self, p: dict) -> None:
        records = self.dns_records.get(p["Domain"], {})
        if p["Entry"] not in records:
            raise AgentFault(f"record {p['Entry']}.{p['Domain']}. does not exist")
        records[p["Entry"]] = p["Addresses"]

    def _rpc_DeleteDnsRecord(self, p: dict) -> None:
        self.dns_records.get(p["Domain"], {}).pop(p["Entry"], None)
