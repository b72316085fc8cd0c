#!/usr/bin/env python3
"""Exit 0 when a Kafka broker on HOST:PORT answers an ApiVersions request, 1 otherwise.

Usage: kafka_ready.py HOST:PORT [TIMEOUT_SECONDS]

A reply to ApiVersions (api key 18, version 0) means the broker's request processing has started.
Standard library only, so it runs with any Python 3 before the project environment exists.
"""

from __future__ import annotations

import socket
import struct
import sys

API_VERSIONS = 18
CORRELATION_ID = 0x7474_6863  # "tthc"
CLIENT_ID = b"tthc-ready"


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return buf


def api_versions_ok(host: str, port: int, timeout: float) -> bool:
    # request header v1: api_key int16, api_version int16, correlation_id int32, client_id string
    body = struct.pack(">hhih", API_VERSIONS, 0, CORRELATION_ID, len(CLIENT_ID)) + CLIENT_ID
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            if size < 6:
                return False
            correlation_id, error_code = struct.unpack(">ih", _recv_exact(sock, 6))
            return correlation_id == CORRELATION_ID and error_code == 0
    except (OSError, struct.error):
        return False


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    host, _, port = argv[1].rpartition(":")
    timeout = float(argv[2]) if len(argv) > 2 else 2.0
    return 0 if api_versions_ok(host or "127.0.0.1", int(port), timeout) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
