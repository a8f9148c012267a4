"""The compact TIME-WAIT table: exact FIFO expiry with restarts and reuse of a 4-tuple."""

from __future__ import annotations

import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from tcplab.engine.timewait import TimeWaitEntry, TimeWaitTable, pack_key, unpack_key

L = 60.0


def key(i: int) -> tuple[str, int, str, int]:
    return ("192.0.2.2", 80, f"198.51.100.{i % 250 + 1}", 1024 + i)


def entry(deadline: float, reuse: bool = False) -> TimeWaitEntry:
    return TimeWaitEntry(123, 456, 65535, reuse, deadline)


def test_keys_round_trip_ipv4_and_ipv6() -> None:
    for k in (("192.0.2.2", 80, "198.51.100.7", 40000), ("2001:db8::2", 443, "2001:db8::1", 1)):
        assert unpack_key(pack_key(k)) == k


def test_restarted_entry_expires_at_its_new_deadline_and_does_not_block_others() -> None:
    t = TimeWaitTable()
    t.add(key(1), entry(L))          # entered at 0
    t.add(key(2), entry(1 + L))      # entered at 1
    t.restart(key(1), 30 + L)        # retransmitted FIN at 30
    assert t.next_deadline() == 1 + L  # key(1)'s stale head item is skipped
    assert [k for k, _ in t.pop_expired(1 + L)] == [key(2)]
    assert t.pop_expired(30 + L - 0.001) == []
    expired = t.pop_expired(30 + L)
    assert [k for k, _ in expired] == [key(1)]
    assert expired[0][1].snd_nxt == 123 and expired[0][1].rcv_nxt == 456
    assert len(t) == 0 and t.next_deadline() is None


def test_removed_then_reused_tuple_keeps_only_its_new_deadline() -> None:
    t = TimeWaitTable()
    t.add(key(1), entry(L))
    t.add(key(2), entry(5 + L))
    assert t.remove(key(1)) is not None  # e.g. a SYN reopened the 4-tuple at 3
    t.add(key(1), entry(10 + L))
    assert [k for k, _ in t.pop_expired(5 + L)] == [key(2)]
    assert [k for k, _ in t.pop_expired(10 + L)] == [key(1)]


def test_port_holders_count_reuse_flags() -> None:
    t = TimeWaitTable()
    t.add(key(1), entry(L, reuse=True))
    t.add(key(2), entry(L, reuse=False))
    assert t.holders("192.0.2.2", 80) == (2, 1)
    t.remove(key(2))
    assert t.holders("192.0.2.2", 80) == (1, 0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "restart", "remove", "tick"]),
                          st.integers(0, 7), st.floats(0, 5)), max_size=60))
def test_matches_a_naive_model(ops: list[tuple[str, int, float]]) -> None:
    t = TimeWaitTable()
    model: dict[tuple[str, int, str, int], float] = {}
    now = 0.0
    for op, i, dt in ops:
        now += dt
        k = key(i)
        if op == "add":
            t.add(k, entry(now + L))
            model[k] = now + L
        elif op == "restart" and k in model:
            t.restart(k, now + L)
            model[k] = now + L
        elif op == "remove":
            assert (t.remove(k) is not None) == (k in model)
            model.pop(k, None)
        else:
            got = sorted(k for k, _ in t.pop_expired(now + L / 2))
            want = sorted(k for k, d in model.items() if d <= now + L / 2)
            assert got == want
            for k2 in want:
                del model[k2]
        assert len(t) == len(model)
        nd = t.next_deadline()
        assert (nd is None) == (not model)
        if model:
            assert nd == min(model.values())


def test_an_entry_costs_well_under_200_bytes() -> None:
    # Structural check; the benchmark (benchmarks/bench_scale.py) measures a million.
    t = TimeWaitTable()
    for i in range(20000):
        t.add(("192.0.2.2", 80, f"10.0.{i >> 8 & 255}.{i & 255}", 1024 + i % 60000),
              entry(L))
    k, v = next(iter(t._tab.items()))
    assert sys.getsizeof(k) + sys.getsizeof(v) + 8 < 120


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 7), st.floats(0, 5), st.booleans(),
                          st.sampled_from(["192.0.2.2", "2001:db8::2"])), max_size=40),
       st.floats(0, 200))
def test_dropping_expired_entries_unread_leaves_what_popping_them_leaves(
        adds: list[tuple[int, float, bool, str]], at: float) -> None:
    """The untraced fast path (drop_expired) and pop_expired end in the same table."""
    tables = TimeWaitTable(), TimeWaitTable()
    now = 0.0
    for i, dt, reuse, laddr in adds:
        now += dt
        for t in tables:
            t.add((laddr, 80 + i % 2, f"198.51.100.{i + 1}", 1024 + i), entry(now + L, reuse))
    popped = len(tables[0].pop_expired(at))
    assert tables[1].drop_expired(at) == popped
    a, b = tables
    assert (len(a), a.port_count, a.port_noreuse, a.next_deadline()) == \
        (len(b), b.port_count, b.port_noreuse, b.next_deadline())
