"""kahuna.config: the YAML file, the environment, overrides, coercion, and validation errors that name the key."""

import pytest

from kahuna.config import Config, ConfigError, load, maildir_of

NO_ENV: dict[str, str] = {}


def write(tmp_path, text):
    path = tmp_path / "kahuna.yml"
    path.write_text(text)
    return path


def test_defaults_work_for_a_local_instance():
    config = load(None, environ=NO_ENV)
    assert config == Config()
    g = config.global_
    assert (g.http.address, g.http.port, g.db.name, g.smtp.security) == ("127.0.0.1", 8080, "kowabunga", "starttls")


def test_the_file_is_read_with_its_go_key_names(tmp_path):
    path = write(tmp_path, """
global:
  logLevel: DEBUG
  http: {port: 9000, trustedProxies: 1}
  smtp:
    from: "Ops <ops@acme.example>"
    security: ssl
  agents:
    requireHmac: yes
""")
    g = load(path, environ=NO_ENV).global_
    assert (g.logLevel, g.http.port, g.http.trustedProxies) == ("DEBUG", 9000, 1)
    assert (g.smtp.sender, g.smtp.security, g.agents.requireHmac) == ("Ops <ops@acme.example>", "ssl", True)
    assert g.http.address == "127.0.0.1"  # unset keys keep their default


def test_an_empty_section_keeps_its_defaults(tmp_path):
    assert load(write(tmp_path, "global:\n  smtp:\n  http:\n"), environ=NO_ENV) == Config()
    assert load(write(tmp_path, ""), environ=NO_ENV) == Config()


def test_precedence_overrides_then_environment_then_file_then_defaults(tmp_path):
    path = write(tmp_path, "global:\n  http: {port: 9000}\n  db: {name: from_file}\n")
    environ = {"KAHUNA_HTTP_PORT": "9100", "KAHUNA_DB_URI": "mongodb://db.example:27017", "KAHUNA_API_KEY": ""}
    g = load(path, environ=environ, overrides={"global.db.name": "from_cli"},
             defaults={"global.db.name": "default_db", "global.logLevel": "DEBUG", "global.http.port": 1}).global_
    assert g.http.port == 9100  # the environment wins over the file; *defaults* never over a set key
    assert g.db.uri == "mongodb://db.example:27017"
    assert g.db.name == "from_cli"
    assert g.apiKey == ""  # an empty variable is no override
    assert g.logLevel == "DEBUG"  # *defaults* replace the built-in default


def test_with_overrides_copies():
    config = Config()
    changed = config.with_overrides({"global.http.port": 9999, "global.smtp.from": "x@acme.example"})
    assert (changed.global_.http.port, changed.global_.smtp.sender) == (9999, "x@acme.example")
    assert config.global_.http.port == 8080


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("global.agents.requireHmac", "yes", True),
    ("global.agents.requireHmac", "TRUE", True),
    ("global.agents.requireHmac", "1", True),
    ("global.agents.requireHmac", "no", False),
    ("global.agents.requireHmac", "0", False),
    ("global.agents.requireHmac", False, False),
    ("global.http.port", "8081", 8081),
    ("global.http.trustedProxies", " 2", 2),
    ("global.jwt.lifetimeHours", "1.5", 1.5),
    ("global.jwt.lifetimeHours", 2, 2.0),
    ("global.db.name", 42, "42"),
    ("global.smtp.password", 1.5, "1.5"),
])
def test_values_are_coerced(key, value, expected):
    config = load(None, environ=NO_ENV, overrides={key: value})
    section, leaf = key.rsplit(".", 1)
    node = config.global_
    for part in section.split(".")[1:]:
        node = getattr(node, part)
    got = getattr(node, leaf)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("global.agents.requireHmac", "maybe", "configuration key global.agents.requireHmac must be a bool, not 'maybe'"),
    ("global.agents.requireHmac", 1, "configuration key global.agents.requireHmac must be a bool, not 1"),
    ("global.http.port", "80a", "configuration key global.http.port must be a int, not '80a'"),
    ("global.http.port", True, "configuration key global.http.port must be a int, not True"),
    ("global.http.port", 8080.0, "configuration key global.http.port must be a int, not 8080.0"),
    ("global.jwt.lifetimeHours", "soon", "configuration key global.jwt.lifetimeHours must be a float, not 'soon'"),
    ("global.db.name", True, "configuration key global.db.name must be a str, not True"),
    ("global.db.name", ["a"], "configuration key global.db.name must be a str, not ['a']"),
    ("global.http", 3, "configuration key global.http must be a mapping"),
    ("global.htp.port", 1, "unknown configuration key global.htp (known here: accounts, adminEmail, agents, apiKey, "
                           "bootstrap, cloudinit, db, ha, http, jwt, kmotion, logLevel, publicUrl, smtp, watchdog)"),
    ("global.smtp.sender", "x", "unknown configuration key global.smtp.sender (known here: from, host, maildir, "
                                "password, port, security, timeoutSeconds, username, verifyTls)"),
    ("globals", {}, "unknown configuration key globals (known here: global)"),
])
def test_wrong_keys_and_types_are_named(key, value, message):
    with pytest.raises(ConfigError) as caught:
        load(None, environ=NO_ENV, overrides={key: value})
    assert str(caught.value) == message


def test_a_boolean_is_not_a_float():
    with pytest.raises(ConfigError) as caught:
        load(None, environ=NO_ENV, overrides={"global.http.idleTimeoutSeconds": True})
    assert str(caught.value) == "configuration key global.http.idleTimeoutSeconds must be a float, not True"


@pytest.mark.parametrize(("text", "message"), [
    ("global: [1, 2]", "configuration key global must be a mapping"),
    ("- global", "configuration file {path} must hold a mapping at its top level"),
    ("global: {http: {port: [}", "configuration file {path} is not valid YAML: "),
])
def test_malformed_files(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path, environ=NO_ENV)
    assert str(caught.value).startswith(message.format(path=path))


def test_a_missing_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "absent.yml", environ=NO_ENV)
    assert str(caught.value) == f"cannot read configuration file {tmp_path / 'absent.yml'}: No such file or directory"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"global.logLevel": "LOUD"},
     "global.logLevel must be one of CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG, not 'LOUD'"),
    ({"global.http.port": 0}, "global.http.port must be between 1 and 65535, not 0"),
    ({"global.http.port": 65536}, "global.http.port must be between 1 and 65535, not 65536"),
    ({"global.http.trustedProxies": -1}, "global.http.trustedProxies must be 0 or more"),
    ({"global.jwt.lifetimeHours": 0}, "global.jwt.lifetimeHours must be more than 0 (tokens would be born expired)"),
    ({"global.jwt.signature": "s" * 31},
     "global.jwt.signature must be at least 32 bytes long, or empty to let Kahuna generate one"),
    ({"global.apiKey": "k" * 31},
     "global.apiKey must be at least 32 characters long, or empty to disable the master key"),
    ({"global.publicUrl": "kowabunga.example"},
     "global.publicUrl must start with http:// or https://, not 'kowabunga.example'"),
    ({"global.smtp.security": "tls"}, "global.smtp.security must be starttls, ssl or none, not 'tls'"),
    ({"global.smtp.maildir": "/var/mail/kahuna"}, "global.smtp.maildir is set beside global.smtp.host: "),
    ({"global.smtp.host": ""}, "global.smtp.host is empty: Kahuna has no SMTP server for the account e-mails"),
    ({"global.agents.pingIntervalSeconds": 30},
     "global.agents.pingIntervalSeconds must be more than 0 and less than deadAfterSeconds"),
    ({"global.agents.pingIntervalSeconds": 0},
     "global.agents.pingIntervalSeconds must be more than 0 and less than deadAfterSeconds"),
    ({"global.accounts.bcryptCost": 3}, "global.accounts.bcryptCost must be between 4 and 16"),
    ({"global.accounts.bcryptCost": 17}, "global.accounts.bcryptCost must be between 4 and 16"),
    ({"global.db.uri": "postgres://db"}, "global.db.uri must be a mongodb:// URI, not 'postgres://db'"),
    ({"global.db.name": ""}, "global.db.name must not be empty"),
    ({"global.http.idleTimeoutSeconds": 0}, "global.http.idleTimeoutSeconds must be more than 0"),
    ({"global.http.headerTimeoutSeconds": -1}, "global.http.headerTimeoutSeconds must be more than 0"),
    ({"global.http.maxConnections": 1}, "global.http.maxConnections must be at least 2"),
    ({"global.http.incompleteRequestsShare": 1}, "global.http.incompleteRequestsShare must be more than 0 and less "
                                                 "than 1"),
    ({"global.http.maxBodyBytes": -1}, "global.http.maxBodyBytes must be 0 or more"),
    ({"global.agents.maxGarbageFrames": 0}, "global.agents.maxGarbageFrames must be at least 1"),
    ({"global.agents.garbageWindowSeconds": 0}, "global.agents.garbageWindowSeconds must be more than 0"),
    ({"global.agents.lateReplyGraceSeconds": 0}, "global.agents.lateReplyGraceSeconds must be more than 0"),
    ({"global.ha.leaseSeconds": 0}, "global.ha.leaseSeconds must be more than 0"),
    ({"global.watchdog.thresholdMs": 0}, "global.watchdog.thresholdMs must be more than 0"),
])
def test_validation_names_the_key_and_the_fix(overrides, message):
    with pytest.raises(ConfigError) as caught:
        load(None, environ=NO_ENV, overrides=overrides)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("overrides", [
    {"global.logLevel": "debug"},  # any case
    {"global.http.incompleteRequestsShare": 0.9},
    {"global.apiKey": "k" * 32, "global.jwt.signature": "s" * 32},
    {"global.db.uri": "mongodb+srv://cluster.example"},
    {"global.db.uri": "", "global.db.embedded.enabled": True},  # the embedded database needs no URI
    {"global.smtp.host": "", "global.smtp.maildir": "/var/mail/kahuna"},
    {"global.smtp.host": "", "global.db.embedded.enabled": True},
])
def test_valid_edge_cases(overrides):
    load(None, environ=NO_ENV, overrides=overrides)


@pytest.mark.parametrize(("overrides", "maildir"), [
    ({}, ""),  # an SMTP server
    ({"global.smtp.host": "", "global.smtp.maildir": "/var/mail/k"}, "/var/mail/k"),
    ({"global.smtp.host": "", "global.db.embedded.enabled": True, "global.db.embedded.dataDir": "/srv/k"},
     "/srv/k/mail"),
    ({"global.smtp.host": "", "global.smtp.maildir": "/var/mail/k", "global.db.embedded.enabled": True},
     "/var/mail/k"),
])
def test_maildir_of(overrides, maildir):
    assert maildir_of(Config().with_overrides(overrides)) == maildir
