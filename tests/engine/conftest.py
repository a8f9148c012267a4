"""One fixture per state: a host driven there by a checked packet exchange (see harness)."""

from __future__ import annotations

import pytest

from . import harness
from .harness import Peer


@pytest.fixture
def closed() -> Peer:
    """No listener and no connection on the port (RFC 9293 3.10.7.1)."""
    return harness.closed()


@pytest.fixture
def socket_listen() -> Peer:
    return harness.listen()


@pytest.fixture
def socket_syn_sent() -> Peer:
    return harness.syn_sent()


@pytest.fixture
def socket_syn_received() -> Peer:
    return harness.syn_received()


@pytest.fixture
def socket_established() -> Peer:
    return harness.established()


@pytest.fixture
def socket_fin_wait_1() -> Peer:
    return harness.fin_wait_1()


@pytest.fixture
def socket_fin_wait_2() -> Peer:
    return harness.fin_wait_2()


@pytest.fixture
def socket_close_wait() -> Peer:
    return harness.close_wait()


@pytest.fixture
def socket_closing() -> Peer:
    return harness.closing()


@pytest.fixture
def socket_last_ack() -> Peer:
    return harness.last_ack()


@pytest.fixture
def socket_time_wait() -> Peer:
    return harness.time_wait()
