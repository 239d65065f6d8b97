"""The ``kahuna`` command as an operator runs it: a real process on loopback."""

import re
import signal
import subprocess
import sys
import time

import kowabunga
import urllib3

from kahuna.storage.embedded import free_loopback_port


def kahuna(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "kahuna.cli", *args], capture_output=True, text=True, timeout=120,
                          **kwargs)


def test_check_config_names_the_faulty_key(tmp_path):
    bad = tmp_path / "kahuna.yml"
    bad.write_text("global:\n  http:\n    prot: 1\n")
    result = kahuna("check-config", "-c", str(bad))
    assert result.returncode == 2
    assert "unknown configuration key global.http.prot" in result.stderr
    good = kahuna("check-config", "-c", "kahuna/data/kahuna.yml")
    assert good.returncode == 0, good.stderr


def test_serve_embedded_prints_the_bootstrap_admin_and_serves(tmp_path):
    port = free_loopback_port()
    process = subprocess.Popen([sys.executable, "-m", "kahuna.cli", "serve", "--embedded", str(tmp_path / "data"),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if "serving Kowabunga API" in line or not line:
                break
        text = "".join(output)
        match = re.search(r"e-mail (\S+) and password (\S+)", text)
        assert match, text
        configuration = kowabunga.Configuration(host=f"http://127.0.0.1:{port}/api/v1")
        credentials = kowabunga.UserApi(kowabunga.ApiClient(configuration)).login(
            kowabunga.UserCredentials(email=match.group(1), password=match.group(2)))
        configuration.access_token = credentials.jwt
        me = kowabunga.UserApi(kowabunga.ApiClient(configuration))
        assert len(me.list_users()) == 1
        assert urllib3.request("GET", f"http://127.0.0.1:{port}/healthz").status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    # A second start finds the admin and prints no password.
    result = kahuna("bootstrap-admin", "--embedded", str(tmp_path / "data"))
    assert result.returncode == 1 and "users exist already" in result.stderr


def test_migrate_on_an_embedded_database(tmp_path):
    result = kahuna("migrate", "--embedded", str(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_an_unreachable_database_fails_clearly(tmp_path):
    config = tmp_path / "kahuna.yml"
    config.write_text(f"global:\n  db:\n    uri: mongodb://127.0.0.1:{free_loopback_port()}/\n    timeoutSeconds: 1\n")
    result = kahuna("serve", "-c", str(config))
    assert result.returncode == 1
    assert "cannot start" in result.stderr
