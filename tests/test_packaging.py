"""Kahuna as pip installs it: the cloud-init templates and the sample configuration are package data, found
through importlib.resources; a wheel built from the repository, installed (not editable) in a fresh virtualenv
and run from outside the repository, checks its sample configuration and creates an instance for simulated
agents with the templates it carries, and carries no test tooling."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from email.parser import Parser
from pathlib import Path

import jinja2
import kowabunga as k
import pytest
import yaml

from kahuna import cloudinit
from kahuna.errors import Unprocessable
from tests import topology
from tests.harness import ROOT
from tests.process_platform import NodePlatform

GIB = 1024**3
TEMPLATES = [f"kahuna/data/cloud-init/{os_}/{name}.j2" for os_ in cloudinit.OPERATING_SYSTEMS
             for name in cloudinit.DOCUMENTS]
MARKER = "# rendered from the installed wheel's templates"


def seed(**overrides) -> cloudinit.Seed:
    values = dict(instance_id="i-1", hostname="web-1", domain="acme.internal", profile="", region="eu-west",
                  zone="a", local_ip="10.0.0.5", metadata_uri="http://127.0.0.1/latest/meta-data",
                  root_password_hash="$2b$04$x", service_user="kowabunga", service_user_pubkey="ssh-ed25519 AAAA",
                  interfaces=[cloudinit.Interface("ens3", "52:54:00:00:00:01", True, ["10.0.0.5/24"],
                                                  gateway="10.0.0.1")])
    return cloudinit.Seed(**{**values, **overrides})


def test_the_shipped_templates_are_package_data():
    templates = cloudinit.Templates()
    shipped = Path(str(cloudinit.SHIPPED_TEMPLATES))
    assert shipped == Path(cloudinit.__file__).parent / "data" / "cloud-init"
    for os_ in cloudinit.OPERATING_SYSTEMS:
        documents = templates.render(os_, seed())
        assert set(documents) == set(cloudinit.DOCUMENTS) and all(documents.values()), os_
        assert templates.environment.get_template(f"{os_}/user-data.j2").filename.startswith(str(shipped))


def test_global_cloudinit_templates_still_names_a_directory_of_ones_own(tmp_path):
    for os_ in cloudinit.OPERATING_SYSTEMS:
        (tmp_path / os_).mkdir()
        for name in cloudinit.DOCUMENTS:
            (tmp_path / os_ / f"{name}.j2").write_text(f"{name} of {{{{ seed.hostname }}}}\n")
    (tmp_path / "linux" / "meta-data.j2").write_text("{{ seed.nothing }}\n")
    templates = cloudinit.Templates(tmp_path)
    assert templates.render("windows", seed())["user-data"] == b"user-data of web-1\n"
    with pytest.raises(Unprocessable, match=f"cloud-init template {tmp_path}/linux/meta-data.j2 failed"):
        templates.render("linux", seed())
    assert isinstance(templates.environment.loader, jinja2.FileSystemLoader)


# -- the wheel, installed --------------------------------------------------------------------------------------


def run(*command: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """*command* from *cwd* (outside the repository), with nothing of the test environment's Python path."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a clean copy of the repository (scripts/source-tree)."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([ROOT / "scripts" / "source-tree", work / "source"], check=True, timeout=60)
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", work / "dist",
                work / "source", cwd=work)
    assert built.returncode == 0, built.stderr
    return next((work / "dist").glob("kahuna-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel (and its dependencies from PyPI) installed, not editable."""
    venv = tmp_path_factory.mktemp("installed") / "venv"
    created = run(sys.executable, "-m", "venv", venv, cwd=venv.parent)
    assert created.returncode == 0, created.stderr
    done = run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel,
               cwd=venv.parent, timeout=600)
    assert done.returncode == 0, done.stderr
    return venv


@pytest.mark.slow
def test_the_wheel_ships_the_templates_and_the_sample_but_no_test_tooling(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {*TEMPLATES, "kahuna/data/kahuna.yml", "kahuna/cli.py", "api/__init__.py", "actors/__init__.py"} <= names
    assert (ROOT / "kahuna" / "data" / "kahuna.yml").read_bytes() == zipfile.ZipFile(wheel).read(
        "kahuna/data/kahuna.yml")
    unwanted = [name for name in names if name.startswith(("tests/", "bench/", "api/static"))
                or name in ("kahuna/simulator.py", "kahuna/harness.py")]
    assert not unwanted
    metadata_name = next(name for name in names if name.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(zipfile.ZipFile(wheel).read(metadata_name).decode())
    websocket = [line for line in metadata.get_all("Requires-Dist") if line.startswith("websocket-client")]
    assert websocket and all('extra == "test"' in line for line in websocket), websocket


@pytest.mark.slow
def test_the_installed_wheel_checks_its_sample_and_creates_an_instance(installed, tmp_path, ferretdb, mail_server):
    python, kahuna = installed / "bin" / "python", installed / "bin" / "kahuna"
    tooling = run(python, "-c", "import websocket", cwd=tmp_path)
    assert "No module named 'websocket'" in tooling.stderr  # the simulated agents' client is for the tests only
    where = run(python, "-c", "import importlib.resources as r, kahuna; print(kahuna.__file__); "
                "print(r.files('kahuna') / 'data' / 'kahuna.yml')", cwd=tmp_path)
    package, sample = (Path(line) for line in where.stdout.split())
    assert package.is_relative_to(installed) and sample.is_relative_to(installed), where
    checked = run(kahuna, "check-config", "-c", sample, cwd=tmp_path)
    assert checked.returncode == 0 and "configuration is valid" in checked.stdout, checked.stderr
    # The templates a seed is rendered from are the installed package's: mark one of them.
    user_data = package.parent / "data" / "cloud-init" / "linux" / "user-data.j2"
    user_data.write_text(user_data.read_text() + MARKER + "\n")
    platform = NodePlatform(tmp_path, ferretdb.uri, f"kahuna_wheel_{uuid.uuid4().hex[:8]}", mail_server,
                            command=[kahuna], cwd=tmp_path)
    try:
        t = topology.build(platform, with_templates=True)  # type: ignore[arg-type] - duck-typed Deployment
        project = k.ProjectApi(t.api).create_project(k.Project(
            name="shop", domain="shop.acme.internal", teams=[], root_password="S3cret-root-pw",
            regions=[t.regions["eu-west"].id]), subnet_size=26)
        made = k.ProjectApi(t.api).create_project_zone_kompute(project.id, t.zones["a"].id, k.Kompute(
            name="web-1", vcpus=2, memory=4 * GIB, disk=20 * GIB, data_disk=0))
        assert t.agents["kaktus-a"].instances["web-1"]["State"] == "Running"
        image = t.agents["kaktus-a"].volumes[("rbd-ssd", "web-1-cloudinit")]["Content"]
        documents = {name: content.decode() for name, content in cloudinit.read_iso(image).items()}
        assert documents["user-data"].startswith("#cloud-config") and MARKER in documents["user-data"]
        assert yaml.safe_load(documents["meta-data"])["kowabunga_local_ip"] == made.ip
        k.KomputeApi(t.api).delete_kompute(made.id)
        k.ProjectApi(t.api).delete_project(project.id)
    finally:
        platform.stop()
