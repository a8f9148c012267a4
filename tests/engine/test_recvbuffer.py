"""The receive buffer against a plain bytes model: payloads arriving and reads of any size
in any order give the same bytes; a read of exactly one payload hands it over uncopied."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.engine.recvbuffer import ReceiveBuffer

OPS = st.lists(st.one_of(
    st.tuples(st.just("arrive"), st.integers(0, 3000)),
    st.tuples(st.just("read"), st.integers(-1, 7000)),
    st.tuples(st.just("peek"), st.integers(0, 7000)),
), max_size=50)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(OPS)
def test_the_buffer_reads_what_a_plain_model_reads(ops: list[tuple[str, int]]) -> None:
    buf, model, counter = ReceiveBuffer(), b"", 0
    for kind, n in ops:
        if kind == "arrive":
            data = bytes((counter + i) & 0xFF for i in range(n))
            counter += n
            buf.append(bytearray(data) if n % 3 == 1 else data)
            model += data
        elif kind == "read":
            got = buf.take(n)
            assert got == model[:max(n, 0)]
            model = model[len(got):]
        else:
            assert buf.peek(n) == model[:n]
        assert len(buf) == len(model) and bool(buf) == bool(model)
        assert bytes(buf) == model
    buf.clear()
    assert len(buf) == 0 and buf.take(10) == b""


def test_a_read_of_one_whole_segment_hands_its_payload_over() -> None:
    buf = ReceiveBuffer()
    seg1, seg2 = b"a" * 1460, b"b" * 1460
    buf.append(seg1)
    buf.append(seg2)
    assert buf.take(1460) is seg1   # no copy
    assert buf.take(100) == b"b" * 100 and len(buf) == 1360
    assert buf.take(1 << 20) == b"b" * 1360 and not buf


def test_read_payloads_go_in_one_move_once_they_are_most_of_the_list() -> None:
    buf, model = ReceiveBuffer(), b""
    for i in range(300):           # 300 small segments, read 7 bytes at a time
        data = bytes([i & 0xFF]) * 5
        buf.append(data)
        model += data
    got = b""
    while buf:
        got += buf.take(7)
        assert len(buf) == len(model) - len(got)
        assert buf.peek(3) == model[len(got):len(got) + 3]
    assert got == model
