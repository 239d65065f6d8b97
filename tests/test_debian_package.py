"""The Debian package (``make deb``: dpkg-buildpackage with dh-virtualenv), installed with ``dpkg -i`` as an
operator would, into a scratch root: an overlay of this machine's / whose writes go to a tmpfs, in a mount
namespace of the test's own. dpkg, the maintainer scripts (adduser, dpkg-statoverride, deb-systemd-helper),
``kahuna check-config`` and ``systemd-analyze verify`` all run chrooted there, on the real system's tools and
Python, and nothing of it reaches the machine's own /.

``KAHUNA_DEB=path/to/kahuna_*.deb`` tests that package instead of building one (about a minute)."""

from __future__ import annotations

import os
import subprocess
import typing
from pathlib import Path

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.slow

VENV = "/opt/venvs/kahuna"
# The virtualenv is made with the system's python3, the one the scratch root has.
PYTHON = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('python%d.%d' % sys.version_info[:2])"],
                        capture_output=True, text=True, check=True).stdout.strip()
SITE = f"{VENV}/lib/{PYTHON}/site-packages"
SHIPPED = {"/etc/kowabunga/kahuna.yml": "kahuna/data/kahuna.yml", "/etc/kowabunga/Caddyfile": "Caddyfile",
           "/etc/kowabunga/caddy.env": "config/caddy.env",
           "/lib/systemd/system/kahuna.service": "systemd/kahuna.service",
           "/lib/systemd/system/kahuna-caddy.service": "systemd/kahuna-caddy.service"}
CONFFILES = ("/etc/kowabunga/kahuna.yml", "/etc/kowabunga/Caddyfile", "/etc/kowabunga/caddy.env")

# Run by `unshare --mount` as the namespace's first process: the overlay, the API filesystems, then it waits
# (bounded) until the test ends it, taking the namespace and its tmpfs along.
SCRATCH_ROOT = """set -eu
mount -t tmpfs -o mode=0755 scratch "$SCRATCH"
mkdir "$SCRATCH/upper" "$SCRATCH/work" "$SCRATCH/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$SCRATCH/upper,workdir=$SCRATCH/work" "$SCRATCH/root"
mount --rbind /dev "$SCRATCH/root/dev"
mount -t proc proc "$SCRATCH/root/proc"
mount -t sysfs sysfs "$SCRATCH/root/sys"
mount -t tmpfs tmpfs "$SCRATCH/root/run"
mount -t tmpfs tmpfs "$SCRATCH/root/tmp"
cp "$DEB" "$SCRATCH/root/tmp/kahuna.deb"
echo ready
exec sleep 1200
"""


class ScratchRoot:
    """This machine's / seen through an overlay (writes to a tmpfs), in a mount namespace of its own."""

    def __init__(self, workdir: Path, deb: Path):
        self.path = workdir / "scratch"
        self.path.mkdir()
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", SCRATCH_ROOT],
                                       env={**os.environ, "SCRATCH": str(self.path), "DEB": str(deb)},
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            self.holder.kill()
            raise RuntimeError(f"no scratch root: {self.holder.communicate(timeout=10)[1]}")

    def run(self, *command: str, user: str = "", timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """*command* chrooted in the scratch root (as *user*, through runuser, if given)."""
        prefix = ["runuser", "-u", user, "--"] if user else []
        return subprocess.run(["nsenter", f"--target={self.holder.pid}", "--mount", "chroot", str(self.path / "root"),
                               "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", *prefix, *command],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def ok(self, *command: str, **kwargs: typing.Any) -> str:
        result = self.run(*command, **kwargs)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        return result.stdout

    def exists(self, path: str) -> bool:
        return self.run("test", "-e", path).returncode == 0

    def stop(self) -> None:
        self.holder.kill()
        self.holder.communicate(timeout=30)


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    if os.environ.get("KAHUNA_DEB"):
        return Path(os.environ["KAHUNA_DEB"]).resolve()
    out = tmp_path_factory.mktemp("deb")
    built = subprocess.run([ROOT / "scripts" / "build-deb", out], capture_output=True, text=True, timeout=900,
                           check=False)
    assert built.returncode == 0, built.stderr[-5000:]
    return Path(built.stdout.split()[-1])


@pytest.fixture
def scratch(tmp_path, deb):
    root = ScratchRoot(tmp_path, deb)
    yield root
    root.stop()


def test_the_package_installs_configures_and_purges_cleanly(scratch, deb):
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == ROOT.joinpath("pyproject.toml").read_text().split('version = "')[1].split('"')[0]
    depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True, check=True).stdout
    minor = int(PYTHON.split(".")[1])
    assert f"python3 (>= 3.{minor}), python3 (<< 3.{minor + 1})" in depends and "adduser" in depends
    scratch.ok("dpkg", "-i", "/tmp/kahuna.deb")

    # The files: the entry point, the configuration as conffiles, the units; what the repository has.
    assert scratch.ok("readlink", "/usr/bin/kahuna").strip() == f"{VENV}/bin/kahuna"
    for installed, source in SHIPPED.items():
        assert scratch.ok("cat", installed) == (ROOT / source).read_text(), installed
    conffiles = scratch.ok("dpkg-query", "--showformat=${Conffiles}", "--show", "kahuna")
    assert sorted(line.split()[0] for line in conffiles.strip().splitlines()) == sorted(CONFFILES)
    assert not scratch.exists(f"{SITE}/kahuna/simulator.py")
    assert not scratch.exists(f"{SITE}/websocket")

    # The system user and the configuration's owner: the daemon may read it, others may not.
    account = scratch.ok("getent", "passwd", "kahuna").strip().split(":")
    assert int(account[2]) < 1000 and account[5] == "/var/lib/kahuna" and account[6].endswith("nologin")
    assert scratch.ok("id", "-gn", "kahuna").strip() == "kahuna"
    assert scratch.ok("stat", "-c", "%U:%G %a", "/etc/kowabunga/kahuna.yml").strip() == "root:kahuna 640"

    # What kahuna.service runs before serving, as its user, on the installed configuration.
    checked = scratch.ok("kahuna", "check-config", "--config", "/etc/kowabunga/kahuna.yml", user="kahuna")
    assert "configuration is valid" in checked
    templates = scratch.ok(f"{VENV}/bin/python", "-c", "from kahuna import cloudinit; "
                           "print(cloudinit.Templates().environment.get_template('linux/user-data.j2').filename)")
    assert templates.strip() == f"{SITE}/kahuna/data/cloud-init/linux/user-data.j2"

    # The installed units verify as they are (their /usr/bin/kahuna exists here); neither is enabled.
    for unit in ("kahuna.service", "kahuna-caddy.service"):
        verified = scratch.run("systemd-analyze", "verify", f"/lib/systemd/system/{unit}")
        assert verified.returncode == 0 and not verified.stderr.strip(), (unit, verified.stderr)
        assert not scratch.exists(f"/etc/systemd/system/multi-user.target.wants/{unit}"), unit
    # The Caddy front's settings as its unit passes them (EnvironmentFile) make a valid Caddy configuration.
    adapted = scratch.ok("sh", "-c", "set -a; . /etc/kowabunga/caddy.env; "
                         "caddy adapt --config /etc/kowabunga/Caddyfile --adapter caddyfile")
    assert "kowabunga.example.com" in adapted and "/usr/share/kowabunga/webapp" in adapted

    # Installing again (an upgrade to the same version) keeps one user and the operator's edits.
    scratch.ok("sh", "-c", "echo '# edited' >> /etc/kowabunga/kahuna.yml")
    scratch.ok("dpkg", "-i", "--force-confold", "/tmp/kahuna.deb")
    assert scratch.ok("grep", "-c", "^kahuna:", "/etc/passwd").strip() == "1"
    assert scratch.ok("tail", "-n", "1", "/etc/kowabunga/kahuna.yml").strip() == "# edited"
    assert scratch.ok("stat", "-c", "%U:%G %a", "/etc/kowabunga/kahuna.yml").strip() == "root:kahuna 640"

    # Purging takes the program, its configuration and the permission override away (the user stays).
    scratch.ok("dpkg", "--purge", "kahuna")
    for gone in (VENV, "/usr/bin/kahuna", "/etc/kowabunga/kahuna.yml", "/lib/systemd/system/kahuna.service"):
        assert not scratch.exists(gone), gone
    assert "kahuna.yml" not in scratch.ok("dpkg-statoverride", "--list")
