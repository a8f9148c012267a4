"""The send buffer against a plain bytes model: appends, acknowledgments and reads in any
order give the same bytes, across compactions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.engine.sendbuffer import COMPACT_AT, SendBuffer

OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 3 * COMPACT_AT)),
    st.tuples(st.just("consume"), st.integers(0, 3 * COMPACT_AT)),
    st.tuples(st.just("take"), st.integers(0, 4 * COMPACT_AT), st.integers(0, 70_000)),
), max_size=40)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(OPS)
def test_the_buffer_holds_what_a_plain_model_holds(ops: list[tuple[int, ...]]) -> None:
    buf, model, counter = SendBuffer(), b"", 0
    for op in ops:
        if op[0] == "append":
            data = bytes((counter + i) & 0xFF for i in range(op[1]))
            counter += op[1]
            buf.append(memoryview(data) if op[1] % 2 else data)
            model += data
        elif op[0] == "consume":
            n = min(op[1], len(model))
            buf.consume(n)
            model = model[n:]
        else:
            off, size = op[1], op[2]
            assert buf.take(off, size) == model[off:off + size]
        assert len(buf) == len(model) and bool(buf) == bool(model)
    assert buf.take(0, len(model)) == model


def test_acknowledged_bytes_are_dropped_in_one_move_past_half_the_buffer() -> None:
    data = bytes(range(256)) * 1024                 # 256 KiB
    buf = SendBuffer()
    buf.append(data)
    buf.consume(COMPACT_AT - 1)                     # counted off the front only
    assert len(buf) == len(data) - COMPACT_AT + 1
    buf.consume(100 * 1024)                         # now past half: compacted
    gone = COMPACT_AT - 1 + 100 * 1024
    assert buf.take(0, 1000) == data[gone:gone + 1000] and len(buf) == len(data) - gone
    buf.consume(len(buf))
    assert not buf and buf.take(0, 10) == b""
