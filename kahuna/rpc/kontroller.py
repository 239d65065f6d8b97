"""Kontroller, the agent inside a service VM (Kawaii, Konvey): it configures the VM from its metadata."""

from __future__ import annotations

from kahuna.rpc import KONTROLLER, CapabilitiesResult, Method, NoParams, NoResult, capabilities_method

# Annotated: kahuna.rpc reads it while the two modules import each other.
Capabilities: Method[NoParams, CapabilitiesResult] = capabilities_method(KONTROLLER)

Reload = Method(KONTROLLER, "Reload", NoParams, NoResult, timeout=120.0,
                doc="Re-read the metadata and reconfigure the services.")
