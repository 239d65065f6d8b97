"""Kahuna, the orchestration daemon of the Kowabunga private cloud.

Domain logic lives in this package and is independent of Flask and of the actor
runtime: ``api`` (HTTP) and ``actors`` (concurrency) call into it.
"""

__version__ = "0.1.0"
API_VERSION = "0.58.0"
#: Older Kowabunga API versions served beside API_VERSION, on the same routes (api.versions).
LEGACY_API_VERSIONS = ("0.53.2",)
CODENAME = "Kahuna-py"

#: What ``kahuna --version`` and ``/version`` say: "<version> (<codename>, API 0.58.0, 0.53.2)".
VERSION_LINE = f"{__version__} ({CODENAME}, API {', '.join((API_VERSION, *LEGACY_API_VERSIONS))})"

__all__ = ["API_VERSION", "CODENAME", "LEGACY_API_VERSIONS", "VERSION_LINE", "__version__"]
