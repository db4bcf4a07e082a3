"""Free TCP ports on the loopback interface, for servers the tests and benches start."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (another process may still take it first)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on `port` right now."""
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0
