"""Which addresses a server listens on, read from the kernel's socket tables."""

import socket

import pytest
from remotecache.lifecycle import _ipv4, _ipv6, _is_loopback, listening_addresses


def test_kernel_hex_addresses_decode() -> None:
    assert _ipv4("0100007F") == "127.0.0.1"
    assert _ipv4("00000000") == "0.0.0.0"
    assert _ipv6("0000000000000000FFFF00000100007F") == "::ffff:127.0.0.1"
    assert _ipv6("00000000000000000000000001000000") == "::1"


@pytest.mark.parametrize(
    "address, loopback",
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_loopback_includes_ipv4_mapped_loopback(address: str, loopback: bool) -> None:
    assert _is_loopback(address) is loopback


def test_a_listening_socket_is_found_with_its_address() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listening_addresses(port) == {"127.0.0.1"}
    assert listening_addresses(port) == set()
