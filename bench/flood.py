"""A hostile agent in its own process (the attacker's side of ``bench.hostile``).

``python -m bench.flood --url http://127.0.0.1:8080 --id <agent id> --key <api key> --seconds 10`` dials
``/ws`` with a valid key and writes, as fast as the socket takes them, replies whose id matches no call
(the probe's flood: 100,000 of them); each time Kahuna closes the socket it dials again at once, with no
back-off, until *seconds* are over. Prints one JSON line: connections made, handshakes refused, frames the
kernel took, and the close codes Kahuna sent.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

import gevent  # noqa: E402

from kahuna.services.agents import ID_HEADER, KEY_HEADER, TYPE_HEADER  # noqa: E402

FRAMES_PER_WRITE = 1000


def masked_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    assert len(payload) < 126, "a short frame only"
    key = os.urandom(4)
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (len(payload) // 4 + 1))[:len(payload)], "big"))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + masked.to_bytes(len(payload), "big")


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _drain(sock: socket.socket, codes: dict[str, int]) -> None:
    """Read what Kahuna sends (its Capabilities request, pings) until its close frame or the end."""
    try:
        while True:
            head = _read_exactly(sock, 2)
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", _read_exactly(sock, 2))[0]
            elif length == 127:
                length = struct.unpack("!Q", _read_exactly(sock, 8))[0]
            payload = _read_exactly(sock, length)
            if head[0] & 0x0F == 0x8:
                code = str(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else "none"
                codes[code] = codes.get(code, 0) + 1
                return
    except OSError:
        codes["reset"] = codes.get("reset", 0) + 1


def _dial(host: str, port: int, agent_id: str, key: str) -> socket.socket | None:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lines = ["GET /ws HTTP/1.1", f"Host: {host}:{port}", "Connection: Upgrade", "Upgrade: websocket",
             "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             f"{TYPE_HEADER}: Kaktus", f"{ID_HEADER}: {agent_id}", f"{KEY_HEADER}: {key}"]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: what follows the head is the socket's first frames
        if not chunk:
            break
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        sock.close()
        return None
    return sock


def run(url: str, agent_id: str, key: str, seconds: float, kind: str = "garbage") -> dict:
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    if kind == "ping":  # frames Kahuna must answer (pongs), not useless ones
        burst = b"".join(masked_frame(b"%d" % n, opcode=0x9) for n in range(FRAMES_PER_WRITE))
    else:
        burst = b"".join(masked_frame(b'{"id":%d,"result":{},"error":null}' % (1_000_000 + n))
                         for n in range(FRAMES_PER_WRITE))
    stats = {"connections": 0, "refused": 0, "frames_taken": 0, "close_codes": {}}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sock = _dial(host, port, agent_id, key)
        except OSError:
            sock = None
        if sock is None:
            stats["refused"] += 1
            gevent.sleep(0.01)
            continue
        stats["connections"] += 1
        reader = gevent.spawn(_drain, sock, stats["close_codes"])
        try:
            while not reader.dead and time.monotonic() < deadline:
                sock.sendall(burst)
                stats["frames_taken"] += FRAMES_PER_WRITE
        except OSError:
            pass
        reader.join(2)
        reader.kill()
        sock.close()
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood")
    parser.add_argument("--url", required=True, help="Kahuna, e.g. http://127.0.0.1:8080")
    parser.add_argument("--id", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--kind", choices=("garbage", "ping"), default="garbage")
    args = parser.parse_args()
    print(json.dumps(run(args.url, args.id, args.key, args.seconds, args.kind)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
