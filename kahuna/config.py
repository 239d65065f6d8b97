"""Kahuna configuration: a YAML file whose keys follow the original Go Kahuna.

Every key has a default that works for a local instance, unknown keys are
refused (a typo must not silently fall back to a default), and secrets can come
from the environment so that they need not sit in the file.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG")

#: Environment variables that override a key of the file, for secrets and for
#: what differs between the two nodes of an HA pair.
ENVIRONMENT_OVERRIDES = {
    "KAHUNA_API_KEY": "global.apiKey",
    "KAHUNA_JWT_SIGNATURE": "global.jwt.signature",
    "KAHUNA_DB_URI": "global.db.uri",
    "KAHUNA_SMTP_PASSWORD": "global.smtp.password",
    "KAHUNA_HTTP_PORT": "global.http.port",
}


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class HttpConfig:
    address: str = "127.0.0.1"
    port: int = 8080
    # How many reverse proxies (Caddy) stand in front of Kahuna: their
    # X-Forwarded-* headers are trusted, nobody else's.
    trustedProxies: int = 0
    # Largest request body accepted, in bytes.
    maxBodyBytes: int = 1 << 20
    # A connection silent this long (a request trickled slowly, an idle keep-alive) is closed.
    idleTimeoutSeconds: float = 30.0
    # A request's whole head (request line and headers) must arrive within this long, counted from the
    # connection's accept (its first request) or from the first byte of the next request (keep-alive);
    # else 408 and the connection is closed, however steadily it trickles.
    headerTimeoutSeconds: float = 5.0
    # Connections whose request is incomplete (head or body still arriving) may hold at most this share
    # of maxConnections; past it the oldest incomplete one is closed, so that the rest stays for clients
    # that send whole requests quickly.
    incompleteRequestsShare: float = 0.5
    # Connections served at once (agents' sockets included); more wait in the backlog.
    maxConnections: int = 20000
    # On stop, requests in flight get this long to finish (idle keep-alives are not waited for beyond it).
    shutdownGraceSeconds: float = 10.0


@dataclass(frozen=True)
class JwtConfig:
    # HMAC secret; empty means a random secret generated once and kept in the
    # database, so that both nodes of an HA pair share it.
    signature: str = ""
    lifetimeHours: float = 1.0


@dataclass(frozen=True)
class EmbeddedDbConfig:
    # Run a private FerretDB (SQLite backend) under dataDir instead of using uri.
    enabled: bool = False
    dataDir: str = "./data"
    ferretdb: str = ""


@dataclass(frozen=True)
class DbConfig:
    uri: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    name: str = "kowabunga"
    timeoutSeconds: float = 5.0
    embedded: EmbeddedDbConfig = field(default_factory=EmbeddedDbConfig)


@dataclass(frozen=True)
class SmtpConfig:
    # The SMTP server account e-mails go through. Empty: no SMTP server, each message is written as a file
    # to a Maildir instead (see maildir_of), which only the embedded default or an explicit maildir allow.
    host: str = "127.0.0.1"
    port: int = 25
    # One of "starttls" (when offered), "ssl" (implicit TLS) or "none".
    security: str = "starttls"
    # For a test or private relay that uses a self-signed certificate.
    verifyTls: bool = True
    username: str = ""
    password: str = ""
    # "Display Name <address>" or a bare address.
    # Kept as "from" in YAML, which is a Python keyword: see _FIELD_ALIASES.
    sender: str = "Kowabunga <kowabunga@localhost>"
    timeoutSeconds: float = 10.0
    # With no SMTP server (host empty): the Maildir each message is written to; empty means
    # <db.embedded.dataDir>/mail with the embedded database, and is refused without it.
    maildir: str = ""


@dataclass(frozen=True)
class BootstrapConfig:
    # Service account created by cloud-init in instances whose project sets none.
    user: str = "kowabunga"
    pubkey: str = ""


@dataclass(frozen=True)
class CloudInitConfig:
    # Directory of the cloud-init templates (<os>/user-data.j2 ...); empty: those shipped in the package.
    templates: str = ""


@dataclass(frozen=True)
class AccountsConfig:
    registrationLinkHours: float = 72.0
    passwordResetLinkMinutes: float = 60.0
    bcryptCost: int = 12
    # Failed logins allowed per account, and per client address, within the window.
    loginFailuresPerAccount: int = 5
    loginFailuresPerSource: int = 20
    loginWindowMinutes: float = 15.0
    # Password-reset e-mails per address, and requests per client address, within the window.
    resetMailsPerAccount: int = 3
    resetRequestsPerSource: int = 10
    resetWindowMinutes: float = 60.0


@dataclass(frozen=True)
class AgentsConfig:
    # Kahuna pings every agent this often; the Go agents expect a ping period under 10 s.
    pingIntervalSeconds: float = 9.0
    # An agent silent (not even a pong) for this long is disconnected.
    deadAfterSeconds: float = 30.0
    maxMessageBytes: int = 16 << 20
    # Frames that are no use (replies matching no call, messages that are not JSON replies, requests,
    # text) allowed per agent connection within garbageWindowSeconds; one more closes the connection with
    # code 1008 (policy violation), and the agent's handshakes are refused (429) for one more window.
    # The agent's log lines about them are at most one per window.
    maxGarbageFrames: int = 20
    garbageWindowSeconds: float = 10.0
    # One request in flight per agent: after its caller gave up (timeout), a request still holds the slot
    # until the agent answers; unanswered this long after, the connection is recycled (close 4003).
    lateReplyGraceSeconds: float = 30.0
    # Replay-proof handshakes: accepted clock skew, and whether the static-key handshake is refused.
    hmacWindowSeconds: int = 300
    requireHmac: bool = False


@dataclass(frozen=True)
class HaConfig:
    # Active-passive pair on one database: only the node holding the lease serves writes and agents.
    enabled: bool = False
    # Lifetime of the lease (kahuna/ha.py): the active renews every third of it and stays active 3/4 of it
    # after each renewal; a dead active is replaced 1 to 4/3 of it after its last renewal.
    leaseSeconds: float = 10.0
    # Name of this node in the lease (default: the host name).
    nodeName: str = ""


@dataclass(frozen=True)
class WatchdogConfig:
    # Hub-stall watchdog (kahuna/watchdog.py): CPU work on the gevent hub without yielding for longer than
    # thresholdMs is logged and counted in /metrics (kahuna_hub_stalls_total).
    enabled: bool = True
    thresholdMs: float = 10.0


@dataclass(frozen=True)
class KMotionConfig:
    # A kMotion plan must be committed within this; an expired plan is refused (404) and pruned.
    planTtlSeconds: float = 300.0
    # A cold kMotion asks the guest to shut down, and powers it off once this has passed.
    shutdownGraceSeconds: float = 60.0


@dataclass(frozen=True)
class GlobalConfig:
    logLevel: str = "INFO"
    publicUrl: str = "http://127.0.0.1:8080"
    adminEmail: str = "admin@example.com"
    apiKey: str = ""
    http: HttpConfig = field(default_factory=HttpConfig)
    jwt: JwtConfig = field(default_factory=JwtConfig)
    db: DbConfig = field(default_factory=DbConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    cloudinit: CloudInitConfig = field(default_factory=CloudInitConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    agents: AgentsConfig = field(default_factory=AgentsConfig)
    ha: HaConfig = field(default_factory=HaConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    kmotion: KMotionConfig = field(default_factory=KMotionConfig)


@dataclass(frozen=True)
class Config:
    # "global" is a Python keyword, hence the attribute name; see _FIELD_ALIASES.
    global_: GlobalConfig = field(default_factory=GlobalConfig)

    def with_overrides(self, overrides: dict[str, typing.Any]) -> Config:
        """A copy with dotted keys ("global.http.port") replaced."""
        raw = _to_raw(self)
        for dotted, value in overrides.items():
            _set_dotted(raw, dotted, value)
        return _build(Config, raw, "")


_FIELD_ALIASES = {"global_": "global", "sender": "from"}


def _yaml_name(attribute: str) -> str:
    return _FIELD_ALIASES.get(attribute, attribute)


def maildir_of(config: Config) -> str:
    """Where mail is written when there is no SMTP server: global.smtp.maildir, else with the embedded
    database <dataDir>/mail; "" when there is an SMTP server or nowhere to write."""
    g = config.global_
    if g.smtp.host:
        return ""
    if g.smtp.maildir:
        return g.smtp.maildir
    return os.path.join(g.db.embedded.dataDir, "mail") if g.db.embedded.enabled else ""


def load(path: str | os.PathLike | None, environ: typing.Mapping[str, str] | None = None,
         overrides: typing.Mapping[str, typing.Any] | None = None,
         defaults: typing.Mapping[str, typing.Any] | None = None) -> Config:
    """Read the YAML file at *path* (or only defaults when None) and the environment.

    *overrides* (dotted keys: the command line's options) win over both; *defaults* replace the built-in
    default of keys that neither sets. The result is validated after all of them.
    """
    raw: dict = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"configuration file {path} must hold a mapping at its top level")
    environ = os.environ if environ is None else environ
    for variable, dotted in ENVIRONMENT_OVERRIDES.items():
        if environ.get(variable):
            _set_dotted(raw, dotted, environ[variable])
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    for dotted, value in (defaults or {}).items():
        _set_dotted(raw, dotted, value, only_if_unset=True)
    config = _build(Config, raw, "")
    _validate(config)
    return config


def _set_dotted(raw: dict, dotted: str, value: typing.Any, only_if_unset: bool = False) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        if node.get(key) is None:  # absent, or an empty mapping in YAML ("smtp:")
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            return  # refused by _build, with the key named
    if only_if_unset:
        node.setdefault(leaf, value)
    else:
        node[leaf] = value


def _build(cls: type, raw: typing.Any, where: str) -> typing.Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration key {where or '<top>'} must be a mapping")
    hints = typing.get_type_hints(cls)
    fields_by_yaml = {_yaml_name(f.name): f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields_by_yaml))
    if unknown:
        known = ", ".join(sorted(fields_by_yaml))
        raise ConfigError(f"unknown configuration key {where + '.' if where else ''}{unknown[0]} (known here: {known})")
    values = {}
    for yaml_name, f in fields_by_yaml.items():
        if yaml_name not in raw:
            continue
        key = f"{where}.{yaml_name}" if where else yaml_name
        values[f.name] = _coerce(hints[f.name], raw[yaml_name], key)
    return cls(**values)


def _coerce(kind: type, value: typing.Any, key: str) -> typing.Any:
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, key)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # from the environment
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"configuration key {key} must be a {kind.__name__}, not {value!r}")


def _validate(config: Config) -> None:
    g = config.global_
    if g.logLevel.upper() not in LOG_LEVELS:
        raise ConfigError(f"global.logLevel must be one of {', '.join(LOG_LEVELS)}, not {g.logLevel!r}")
    if not 0 < g.http.port < 65536:
        raise ConfigError(f"global.http.port must be between 1 and 65535, not {g.http.port}")
    if g.http.trustedProxies < 0:
        raise ConfigError("global.http.trustedProxies must be 0 or more")
    if g.jwt.lifetimeHours <= 0:
        raise ConfigError("global.jwt.lifetimeHours must be more than 0 (tokens would be born expired)")
    if g.jwt.signature and len(g.jwt.signature.encode()) < 32:
        raise ConfigError("global.jwt.signature must be at least 32 bytes long, or empty to let Kahuna generate one")
    if g.apiKey and len(g.apiKey) < 32:
        raise ConfigError("global.apiKey must be at least 32 characters long, or empty to disable the master key")
    if not g.publicUrl.startswith(("http://", "https://")):
        raise ConfigError(f"global.publicUrl must start with http:// or https://, not {g.publicUrl!r}")
    if g.smtp.security not in ("starttls", "ssl", "none"):
        raise ConfigError(f"global.smtp.security must be starttls, ssl or none, not {g.smtp.security!r}")
    if g.smtp.host and g.smtp.maildir:
        raise ConfigError("global.smtp.maildir is set beside global.smtp.host: mail goes to one of them; empty "
                          "global.smtp.host to write mail to the maildir, or global.smtp.maildir to send it")
    if not g.smtp.host and not maildir_of(config):
        raise ConfigError("global.smtp.host is empty: Kahuna has no SMTP server for the account e-mails (links, "
                          "passwords, API keys), which production needs; name one, or set global.smtp.maildir to "
                          "a directory where each message is written as a file instead")
    if not 0 < g.agents.pingIntervalSeconds < g.agents.deadAfterSeconds:
        raise ConfigError("global.agents.pingIntervalSeconds must be more than 0 and less than deadAfterSeconds")
    if not 4 <= g.accounts.bcryptCost <= 16:
        raise ConfigError("global.accounts.bcryptCost must be between 4 and 16")
    if not g.db.embedded.enabled and not g.db.uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(f"global.db.uri must be a mongodb:// URI, not {g.db.uri!r}")
    if not g.db.name:
        raise ConfigError("global.db.name must not be empty")
    if not 0 < g.http.idleTimeoutSeconds:
        raise ConfigError("global.http.idleTimeoutSeconds must be more than 0")
    if not 0 < g.http.headerTimeoutSeconds:
        raise ConfigError("global.http.headerTimeoutSeconds must be more than 0")
    if g.http.maxConnections < 2:
        raise ConfigError("global.http.maxConnections must be at least 2")
    if not 0 < g.http.incompleteRequestsShare < 1:
        raise ConfigError("global.http.incompleteRequestsShare must be more than 0 and less than 1 "
                          "(the rest of maxConnections is kept for complete requests)")
    if g.http.maxBodyBytes < 0:
        raise ConfigError("global.http.maxBodyBytes must be 0 or more")
    if g.agents.maxGarbageFrames < 1:
        raise ConfigError("global.agents.maxGarbageFrames must be at least 1")
    if g.agents.garbageWindowSeconds <= 0:
        raise ConfigError("global.agents.garbageWindowSeconds must be more than 0")
    if g.agents.lateReplyGraceSeconds <= 0:
        raise ConfigError("global.agents.lateReplyGraceSeconds must be more than 0")
    if g.ha.leaseSeconds <= 0:
        raise ConfigError("global.ha.leaseSeconds must be more than 0")
    if g.watchdog.thresholdMs <= 0:
        raise ConfigError("global.watchdog.thresholdMs must be more than 0")
    if g.kmotion.planTtlSeconds <= 0:
        raise ConfigError("global.kmotion.planTtlSeconds must be more than 0")
    if g.kmotion.shutdownGraceSeconds < 0:
        raise ConfigError("global.kmotion.shutdownGraceSeconds must be 0 or more")


def _to_raw(value: typing.Any) -> typing.Any:
    if dataclasses.is_dataclass(value):
        return {_yaml_name(f.name): _to_raw(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value
