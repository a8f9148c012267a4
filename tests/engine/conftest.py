"""One fixture per state: a host driven there by a checked packet exchange (see harness)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tcplab.i18n import has_cjk, phrase
from tcplab.render.narrate import cause_key
from tcplab.trace import validate_event

from . import harness
from .harness import Peer


@pytest.fixture(autouse=True)
def every_trace_fits_the_vocabulary_and_speaks_chinese() -> Iterator[None]:
    """After each engine test: every event the engine recorded fits the typed trace
    vocabulary, and every drop reason and state cause it wrote has a Chinese text
    (the catalogue knows it exactly or as a template)."""
    harness.CREATED.clear()
    yield
    for peer in harness.CREATED:
        for e in peer.trace.events:
            assert not validate_event(e), (validate_event(e), e)
            if e["kind"] == "segment" and e.get("reason"):
                zh = phrase("reason", str(e["reason"]), "zh")
                assert zh is not None and has_cjk(zh), f"no Chinese for reason {e['reason']!r}"
            if e["kind"] == "state" and e.get("cause"):
                zh = phrase("causename", cause_key(str(e["cause"])), "zh")
                assert zh is not None and has_cjk(zh), f"no Chinese for cause {e['cause']!r}"
    harness.CREATED.clear()


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
