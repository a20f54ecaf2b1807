"""Offline guard: make any attempt to reach a non-local address fail loudly.

The course promises that no notebook or test needs the network. The tests (and notebooks run with
``DLFUND_NO_NETWORK=1``) call :func:`block_network` so a hidden download fails at once with a clear
message instead of passing on a machine that happens to be online.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

_original_connect = socket.socket.connect
_original_getaddrinfo = socket.getaddrinfo
_blocked = False


class NetworkBlockedError(RuntimeError):
    """Raised when code tries to reach a remote host while the network is blocked."""


def _is_local(host: Any) -> bool:
    if isinstance(host, (bytes, bytearray)):
        host = host.decode()
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    if host in ("localhost", "", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    if not _is_local(host):
        raise NetworkBlockedError(
            f"network access is blocked in the course (tried to connect to {address!r}); "
            "everything must work offline: use dlfund.data for datasets"
        )
    return _original_connect(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None and not _is_local(host):
        raise NetworkBlockedError(
            f"network access is blocked in the course (tried to resolve {host!r}); "
            "everything must work offline: use dlfund.data for datasets"
        )
    return _original_getaddrinfo(host, *args, **kwargs)


def block_network() -> None:
    """Refuse connections and name lookups for every non-loopback address in this process."""
    global _blocked
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]
    _blocked = True


def unblock_network() -> None:
    global _blocked
    socket.socket.connect = _original_connect  # type: ignore[method-assign]
    socket.getaddrinfo = _original_getaddrinfo
    _blocked = False


def network_blocked() -> bool:
    return _blocked
