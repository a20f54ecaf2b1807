"""The offline guard: the test process (and every notebook kernel) cannot reach a remote host."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from dlfund.utils.net import NetworkBlockedError, network_blocked


def test_tests_run_with_the_network_blocked():
    assert network_blocked()
    with pytest.raises(NetworkBlockedError, match="blocked in the course"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    with pytest.raises(Exception, match="blocked in the course"):
        urllib.request.urlopen("http://example.com", timeout=1)


def test_loopback_stays_usable():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=5)
    client.close()
    server.close()
