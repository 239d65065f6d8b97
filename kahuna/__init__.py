"""Kahuna, the orchestration daemon of the Kowabunga private cloud.

Domain logic lives in this package and is independent of Flask and of the actor
runtime: ``api`` (HTTP) and ``actors`` (concurrency) call into it.
"""

__version__ = "0.1.0"
API_VERSION = "0.53.2"
CODENAME = "Kahuna-py"

__all__ = ["API_VERSION", "CODENAME", "__version__"]
