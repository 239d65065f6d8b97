"""The API contract (``api/contract/openapi.yaml``), parsed once per test session.

With libyaml's loader: the pure-Python one took about a second per parse of its 200 KB, and three test
modules read it when collected.
"""

import functools
import typing
from pathlib import Path

import yaml

PATH = Path(__file__).parents[1] / "api" / "contract" / "openapi.yaml"


@functools.cache
def contract() -> dict[str, typing.Any]:
    return yaml.load(PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loader
