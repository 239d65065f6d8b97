"""The REST load generator, in its own process (the clients' side of ``bench.production.rest``).

``python -m bench.load --url http://127.0.0.1:8080 --path /api/v1/region/<id> -H 'X-API-Key: …'
[--method POST --body '{"name": "z{n}"}'] --connections 32 --seconds 10`` keeps *connections*
HTTP/1.1 keep-alive connections busy for *seconds* and prints one JSON line: requests answered,
failures (status >= 400, or a connection lost), and the latency percentiles in milliseconds.

It speaks HTTP over plain sockets with each request's bytes built once (``{n}`` in the body
is replaced by a number unique to the request), so that it spends as little CPU as it can:
on a small machine the load generator shares the cores with the server it measures.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

import gevent  # noqa: E402


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


class _Connection:
    def __init__(self, host: str, port: int):
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def request(self, data: bytes) -> int:
        """Send one request, read its whole reply; the reply's status (0: the connection failed)."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=30)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buffer = b""
            self.sock.sendall(data)
            return self._reply()
        except OSError:
            self.close()
            return 0

    def _reply(self) -> int:
        sock = self.sock
        while b"\r\n\r\n" not in self.buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buffer += chunk
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise ConnectionError("chunked replies are not expected")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            rest += chunk
        self.buffer = rest[length:]
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def run(url: str, method: str, path: str, headers: list[str], body: str | None, connections: int,
        seconds: float) -> dict:
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(f"{h}\r\n" for h in headers)
    fixed = None
    if body is None:
        fixed = (head + "\r\n").encode()

    def request_bytes(n: int) -> bytes:
        if fixed is not None:
            return fixed
        payload = body.replace("{n}", str(n)).encode()
        return (head + f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload

    latencies: list[float] = []
    failures = 0
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    def worker(number: int) -> None:
        nonlocal failures
        connection = _Connection(host, port)
        sequence = 0
        clock = time.perf_counter
        while time.monotonic() < deadline:
            sequence += 1
            data = request_bytes(number * 10_000_000 + sequence)
            started = clock()
            status = connection.request(data)
            latencies.append((clock() - started) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if status >= 400 or status == 0:
                failures += 1
        connection.close()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(worker, n) for n in range(connections)], raise_error=True)
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {"requests": len(ordered), "failures": failures, "seconds": elapsed,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "p50_ms": _percentile(ordered, 0.50), "p90_ms": _percentile(ordered, 0.90),
            "p99_ms": _percentile(ordered, 0.99), "max_ms": ordered[-1] if ordered else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--path", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("-H", "--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--body", default=None, help="JSON body; {n} is replaced by a number unique to the request")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = run(args.url, args.method, args.path, args.header, args.body, args.connections, args.seconds)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
