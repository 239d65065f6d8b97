"""The cloud-init seed of an instance: three documents rendered from templates, written to a cidata ISO.

Templates are Jinja2 files, ``<os>/user-data.j2``, ``<os>/meta-data.j2`` and
``<os>/network-config.j2``, one set per template OS (``linux``, ``windows``): those shipped
in the package (``kahuna/data/cloud-init/``, loaded through importlib.resources, so that they
are found wherever and however Kahuna is installed), or those of the directory named by
``global.cloudinit.templates``. They receive
the :class:`Seed` as ``seed``; a template that refers to an undefined value fails the
instance creation with the template's name, rather than writing a truncated file. Besides
Jinja's own filters, ``tojson`` (a value that may hold anything, as a YAML string) among
them, they have ``b64encode``.

The ISO is plain ISO9660 with the volume label ``cidata`` and the lowercase primary
names ``user-data;1``, ``meta-data;1``, ``network-config;1`` (interchange level 4):
the Kontroller agents' ISO reader looks for exactly ``meta-data`` and ignores Joliet
and Rock Ridge names.

Rendering and ISO building run on the hub's thread pool (:func:`kahuna.watchdog.off_hub`),
so that an instance creation never holds the hub; templates are compiled once, when
:class:`Templates` is made (and again when a file changes), on the hub, where Jinja's
cache and its lock live.
"""

from __future__ import annotations

import base64
import io
import json
import re
import typing
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import jinja2
import pycdlib

from kahuna.errors import Unprocessable
from kahuna.watchdog import off_hub

#: The shipped templates, package data of ``kahuna`` (the loader reads them through importlib.resources).
SHIPPED_TEMPLATES = resources.files("kahuna") / "data" / "cloud-init"
DOCUMENTS = ("user-data", "meta-data", "network-config")
OPERATING_SYSTEMS = ("linux", "windows")


@dataclass(frozen=True)
class Interface:
    device: str
    mac: str
    private: bool
    addresses: list[str]  # "ip/prefix"
    gateway: str = ""
    dns: str = ""
    domain: str = ""
    routes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Seed:
    """Everything the templates may use."""

    instance_id: str
    hostname: str
    domain: str
    profile: str
    region: str
    zone: str
    local_ip: str
    metadata_uri: str
    root_password_hash: str
    service_user: str
    service_user_pubkey: str
    interfaces: list[Interface]
    controller_uri: str = ""
    controller_agent_id: str = ""
    controller_agent_token: str = ""


#: What ``json.dumps(..., ensure_ascii=False)`` leaves unescaped but a YAML template should not: every character
#: but printable ASCII and those beyond U+FFFF (JSON escapes the controls below U+0020 itself).
_YAML_ESCAPED = re.compile(r"[^\x00-\x7e\U00010000-\U0010ffff]")


def _json_for_yaml(value: typing.Any, **kwargs: typing.Any) -> str:
    """``json.dumps`` for the ``tojson`` filter of YAML templates (Jinja's policy ``json.dumps_function``).

    As with ``ensure_ascii`` (Jinja's default), but for the characters beyond U+FFFF: JSON escapes one as a
    UTF-16 surrogate pair, which YAML (PyYAML, what cloud-init reads with) takes for two code points, whereas
    YAML reads such a character written as itself just like JSON does.
    """
    text = json.dumps(value, **{**kwargs, "ensure_ascii": False})
    return _YAML_ESCAPED.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class Templates:
    def __init__(self, directory: str | Path = ""):
        """*directory*: the operator's templates (``global.cloudinit.templates``); empty: the shipped ones."""
        loader: jinja2.BaseLoader
        if directory:
            self.directory: Path | Traversable = Path(directory)
            loader = jinja2.FileSystemLoader(str(self.directory))
        else:
            self.directory = SHIPPED_TEMPLATES
            loader = jinja2.PackageLoader("kahuna", "data/cloud-init")
        self.environment = jinja2.Environment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # noqa: S701 - YAML and scripts, not HTML
        )
        self.environment.filters["b64encode"] = lambda text: base64.b64encode(str(text).encode()).decode()
        # A value that may hold anything is written with Jinja's tojson: a JSON string is a YAML double-quoted
        # scalar of the same value, but for one thing, which _json_for_yaml takes care of.
        self.environment.policies["json.dumps_function"] = _json_for_yaml
        for os in OPERATING_SYSTEMS:  # compiled now rather than during a request (a few ms each)
            for name in DOCUMENTS:
                try:
                    self.environment.get_template(f"{os}/{name}.j2")
                except jinja2.TemplateError:
                    pass  # reported by render(), with the template's name

    def render(self, os: str, seed: Seed) -> dict[str, bytes]:
        if os not in OPERATING_SYSTEMS:
            raise Unprocessable(f"no cloud-init templates for OS {os!r}: "
                                f"expected one of {', '.join(OPERATING_SYSTEMS)}")
        documents = {}
        for name in DOCUMENTS:
            template_name = f"{os}/{name}.j2"
            try:
                template = self.environment.get_template(template_name)
                documents[name] = off_hub(template.render, seed=seed).encode()
            except jinja2.TemplateError as exc:
                raise Unprocessable(f"cloud-init template {self.directory / template_name} failed: {exc}") from None
        return documents


def build_iso(documents: typing.Mapping[str, bytes]) -> bytes:
    """A cidata ISO holding *documents* at its root (built on the hub's thread pool)."""
    return off_hub(_build_iso, dict(documents))


def _build_iso(documents: typing.Mapping[str, bytes]) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, vol_ident="cidata")
    for name, content in documents.items():
        iso.add_fp(io.BytesIO(content), len(content), f"/{name};1")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_iso(image: bytes) -> dict[str, bytes]:
    """The documents of a cidata ISO by primary name (what the agents see; used by the simulator and tests)."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    documents = {}
    for child in iso.list_children(iso_path="/"):
        if child.is_file():
            name = child.file_identifier().decode().split(";")[0]
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, iso_path=f"/{child.file_identifier().decode()}")
            documents[name] = out.getvalue()
    iso.close()
    return documents
