"""No SMTP server: account e-mails written to a maildir (the embedded default, `make run`), so a newcomer can
confirm accounts and read keys; and production configurations without an SMTP server refused."""

from __future__ import annotations

import logging
import mailbox
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import kowabunga
import pytest
import urllib3

from kahuna.config import Config, ConfigError, load, maildir_of
from kahuna.daemon import Kahuna
from kahuna.storage.embedded import free_loopback_port
from tests.deployment import ADMIN_EMAIL, MASTER_KEY, Deployment
from tests.mailserver import MailServer, fact_in, link_in, text_of


def kahuna(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kahuna.cli", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def messages(directory) -> list:
    box = mailbox.Maildir(directory, create=False)
    return [box.get_message(key) for key in box.keys()]


def wait_for(directory, to: str, subject: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in messages(directory) if m["To"] == to and subject in m["Subject"]] \
            if os.path.isdir(directory) else []
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no {subject!r} for {to} in {directory}"
        time.sleep(0.05)


@pytest.fixture
def without_smtp(ferretdb, tmp_path):
    """A Kahuna whose configuration names no SMTP server and a maildir that does not exist yet."""
    maildir = tmp_path / "data" / "Maildir"
    config = Config().with_overrides({
        "global.db.uri": ferretdb.uri, "global.db.name": f"kahuna_maildir_{os.getpid()}",
        "global.apiKey": MASTER_KEY, "global.adminEmail": ADMIN_EMAIL,
        "global.smtp.host": "", "global.smtp.maildir": str(maildir),
        "global.accounts.bcryptCost": 4, "global.http.shutdownGraceSeconds": 0.1,
    })
    running = Kahuna.start(config)
    server = running.listen("127.0.0.1", 0)
    running.services.users.public_url = f"http://127.0.0.1:{server.address[1]}"
    # The suite's helpers read the same maildir (MailServer reads <dir>/Maildir, no server started).
    deployment = Deployment(running, MailServer(tmp_path / "data", 0), config.global_.db.name)
    yield deployment, maildir
    deployment.stop()


def test_without_smtp_a_new_user_is_confirmed_and_gets_a_key_from_the_maildir(without_smtp, caplog):
    deployment, maildir = without_smtp
    caplog.set_level(logging.INFO, logger="kahuna.mail")
    assert sorted(os.listdir(maildir)) == ["cur", "new", "tmp"]  # created at start, the owner's only
    assert (maildir.stat().st_mode & 0o777) == 0o700
    users = kowabunga.UserApi(deployment.admin)
    bob = users.create_user(kowabunga.User(name="bob", email="bob@example.com", role="user"))
    welcome = wait_for(maildir, "bob@example.com", "Welcome to Kowabunga")
    # One file per message, and the log says which.
    [written] = [r.getMessage() for r in caplog.records if "Welcome to Kowabunga" in r.getMessage()]
    path = re.search(r"written to (\S+)$", written).group(1)
    assert os.path.dirname(path) == str(maildir / "new") and os.path.isfile(path)
    assert "bob@example.com" in written
    # The link opens a page with a button (GET uses nothing up); the button confirms the account.
    link = link_in(welcome)
    page = deployment.follow(link, method="GET")
    assert page.status == 200 and b"<form method='post'>" in page.data and b"<button" in page.data
    assert deployment.follow(link).status == 200
    password = fact_in(wait_for(maildir, "bob@example.com", "account is ready"), "Password")
    credentials = kowabunga.UserApi(deployment.anonymous()).login(
        kowabunga.UserCredentials(email="bob@example.com", password=password))
    # A key rotation: the key is e-mailed, so read from the maildir, and it works.
    kowabunga.UserApi(deployment.client(token=credentials.jwt)).set_user_api_token(bob.id)
    key = fact_in(wait_for(maildir, "bob@example.com", "A new Kowabunga API key"), "API key")
    assert kowabunga.UserApi(deployment.client(api_key=key)).read_user(bob.id).name == "bob"
    # The suite's own reader finds the same messages.
    assert deployment.mail.count("bob@example.com", "Kowabunga") == 3
    assert "Hi," in text_of(welcome)


def test_an_unwritable_maildir_is_a_422_not_a_crash(without_smtp):
    deployment, maildir = without_smtp
    # A file where the maildir's tmp/ folder should be: no write succeeds, not even root's.
    (maildir / "tmp").rename(maildir / "tmp.away")
    (maildir / "tmp").write_text("")
    try:
        response = deployment.http.request("POST", f"{deployment.base_url}/api/v1/user",
                                           json={"name": "carol", "email": "carol@example.com", "role": "user"},
                                           headers={"X-API-Key": MASTER_KEY})
        assert response.status == 422
        assert "cannot send e-mail" in response.json()["reason"]
    finally:
        (maildir / "tmp").unlink()
        (maildir / "tmp.away").rename(maildir / "tmp")


def test_serve_embedded_writes_mail_under_its_data_directory(tmp_path):
    """`make run`: the newcomer's flow past the bootstrap admin, with no SMTP server anywhere."""
    data = tmp_path / "data"
    port = free_loopback_port()
    process = subprocess.Popen([sys.executable, "-m", "kahuna.cli", "serve", "--embedded", str(data),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager(retries=False, timeout=10)
    try:
        deadline = time.monotonic() + 60
        while not any("serving Kowabunga API" in line for line in output):
            assert process.poll() is None and time.monotonic() < deadline, "".join(output)
            time.sleep(0.1)
        admin = re.search(r"e-mail (\S+) and password (\S+)", "".join(output))
        configuration = kowabunga.Configuration(host=f"{base}/api/v1")
        jwt = kowabunga.UserApi(kowabunga.ApiClient(configuration)).login(
            kowabunga.UserCredentials(email=admin.group(1), password=admin.group(2))).jwt
        configuration.access_token = jwt
        kowabunga.UserApi(kowabunga.ApiClient(configuration)).create_user(
            kowabunga.User(name="newcomer", email="newcomer@example.com", role="user"))
        maildir = data / "mail"
        welcome = wait_for(maildir, "newcomer@example.com", "Welcome to Kowabunga")
        link = urllib.parse.urlsplit(link_in(welcome))
        fields = dict(urllib.parse.parse_qsl(link.query))
        assert http.request("GET", f"{base}{link.path}", fields=fields).status == 200
        assert http.request("POST", f"{base}{link.path}", body=urllib.parse.urlencode(fields),
                            headers={"Content-Type": "application/x-www-form-urlencoded"}).status == 200
        password = fact_in(wait_for(maildir, "newcomer@example.com", "account is ready"), "Password")
        assert kowabunga.UserApi(kowabunga.ApiClient(kowabunga.Configuration(host=f"{base}/api/v1"))).login(
            kowabunga.UserCredentials(email="newcomer@example.com", password=password)).jwt
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        reader.join(timeout=10)
    log = "".join(output)
    assert f"e-mails are written to the maildir {maildir}" in log
    written = re.findall(r"e-mail '([^']+)' to newcomer@example.com written to (\S+)", log)
    assert len(written) == 2 and "Welcome to Kowabunga" in written[0][0] and "ready" in written[1][0], log
    assert all(os.path.isfile(path) and path.startswith(f"{maildir}/new/") for _, path in written)


# -- what production configurations may say --------------------------------------------------------------


def test_check_config_refuses_a_production_configuration_without_smtp(tmp_path):
    config = tmp_path / "kahuna.yml"
    config.write_text("global:\n  smtp:\n    host: \"\"\n")
    refused = kahuna("check-config", "-c", str(config))
    assert refused.returncode == 2
    assert "global.smtp.host is empty" in refused.stderr and "global.smtp.maildir" in refused.stderr
    # serve loads the same way: it refuses before touching anything.
    assert kahuna("serve", "-c", str(config)).returncode == 2
    # Explicitly a maildir: accepted, and said where mail goes.
    config.write_text(f"global:\n  smtp:\n    host: \"\"\n    maildir: {tmp_path / 'mail'}\n")
    accepted = kahuna("check-config", "-c", str(config))
    assert accepted.returncode == 0, accepted.stderr
    assert f"written to the maildir {tmp_path / 'mail'}" in accepted.stdout
    # The sample names an SMTP server.
    sample = kahuna("check-config", "-c", "kahuna/data/kahuna.yml")
    assert sample.returncode == 0 and "sent through the SMTP server 127.0.0.1:25" in sample.stdout


def test_check_config_of_the_embedded_default_says_where_mail_goes(tmp_path):
    result = kahuna("check-config", "--embedded", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert f"written to the maildir {tmp_path / 'data' / 'mail'}" in result.stdout
    # A configuration file that names an SMTP server keeps it, embedded or not.
    config = tmp_path / "kahuna.yml"
    config.write_text("global:\n  smtp:\n    host: smtp.example.com\n")
    result = kahuna("check-config", "--embedded", str(tmp_path / "data"), "-c", str(config))
    assert result.returncode == 0 and "SMTP server smtp.example.com:25" in result.stdout


@pytest.mark.parametrize("text, words", [
    ("global:\n  smtp:\n    host: \"\"\n", "global.smtp.host is empty"),
    ("global:\n  smtp:\n    maildir: /tmp/mail\n", "global.smtp.maildir is set beside global.smtp.host"),
    ("global:\n  smtp:\n    host: relay.example\n    maildir: /tmp/mail\n", "beside global.smtp.host"),
])
def test_ambiguous_or_missing_mail_destinations_are_refused(tmp_path, text, words):
    path = tmp_path / "kahuna.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        load(path, environ={})


def test_the_embedded_database_without_smtp_writes_under_its_data_directory(tmp_path):
    path = tmp_path / "kahuna.yml"
    path.write_text(f"global:\n  smtp:\n    host: \"\"\n  db:\n    embedded:\n      enabled: true\n"
                    f"      dataDir: {tmp_path / 'data'}\n")
    assert maildir_of(load(path, environ={})) == str(tmp_path / "data" / "mail")
    # An empty YAML mapping under a key the command line sets is no crash.
    path.write_text("global:\n  db:\n  smtp:\n")
    config = load(path, environ={}, overrides={"global.db.embedded.enabled": True,
                                               "global.db.embedded.dataDir": str(tmp_path / "d")},
                  defaults={"global.smtp.host": ""})
    assert maildir_of(config) == str(tmp_path / "d" / "mail")
