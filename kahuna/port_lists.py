"""Port list expressions of firewall, NAT and load-balancer rules: ``"22,80,8000-8080"``."""

from __future__ import annotations

from kahuna.errors import BadRequest

MIN_PORT = 1
MAX_PORT = 65535


def _port(text: str, expression: str) -> int:
    if not text.strip().isdigit():
        raise BadRequest(f"Invalid port list expression: '{expression}'. '{text}' is not a port number")
    port = int(text)
    if port < MIN_PORT:
        raise BadRequest(f"Invalid port list expression: '{expression}'. One of the specified ports is < {MIN_PORT}")
    if port > MAX_PORT:
        raise BadRequest(f"Invalid port list expression: '{expression}'. One of the specified ports is > {MAX_PORT}")
    return port


def check_port_list(expression: str) -> str:
    """*expression* if it is a valid port list; :class:`BadRequest` naming the fault otherwise."""
    for item in expression.split(","):
        bounds = item.split("-")
        if len(bounds) > 2:
            raise BadRequest(f"Invalid port list expression: '{expression}'. Port range has more than 2 elements")
        ports = [_port(bound, expression) for bound in bounds]
        if len(ports) == 2 and ports[1] < ports[0]:
            raise BadRequest(f"Invalid port list expression: '{expression}'. In range {item}, the last port is "
                             f"lower than the first")
    return expression


def check_port(port: int) -> int:
    if not MIN_PORT <= port <= MAX_PORT:
        raise BadRequest(f"port {port} is out of range: expected {MIN_PORT} to {MAX_PORT}")
    return port
