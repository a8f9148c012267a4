"""The kernel's TCP states inside a namespace: from its tracepoints, else from sock_diag polls.

A thread enters the namespace (:func:`~tcplab.tun.netns.enter_netns`) so that every
sock_diag question it asks is about the namespace's sockets, then follows the kernel's
sockets in one of two ways, and hands each change over as a ``state`` event with host
``"kernel"`` (and ``note`` events where the kernel does something worth saying):

**Tracepoints** (where tracefs works, see :mod:`tcplab.kernel.tracefs`): a private
tracefs instance on the ``mono`` clock, the clock of the backend's event loop, so the
kernel's nanosecond timestamps line up with tcplab's own events. Every transition is
there, FIN-WAIT-2 included, merged by the same model as ``tcplab watch``
(:class:`tcplab.kernel.watch.KernelWatch`), which also follows the timewait mini-socket
a closed socket hands over to (the tracepoint shows CLOSE; sock_diag shows FIN-WAIT-2,
then TIME-WAIT). The segments the backend records (``Trace.listeners``) tell it which
segment caused a change and when tcplab's FIN reached a mini-socket; it records no
segments itself.

Tracepoints are global: they report the sockets of every namespace. The instance's
in-kernel filter keeps only TCP sockets with the kernel's address (192.0.2.1) at either
end (IPv6 passes whole, and only the kernel's IPv6 address, 2001:db8::1, is kept
afterwards), and a socket counts as this namespace's when a task inside the
namespace made the call (``connect()``, ``listen()``: the task's ``/proc/PID/ns/net`` is
this namespace), when it was born from a listener that counts, when no other tcplab
namespace is alive (nothing else uses the address then), or when sock_diag inside the
namespace lists its 4-tuple.

Memory is bounded for a server that runs for days: the model remembers each connection
it saw, so after ``model_records`` (20,000) state records a fresh model takes over, told by
sock_diag which sockets exist at that moment (a transition under way at that instant
may then be told with less detail: its cause, not the segment behind it).

**Polling** (the fallback): sock_diag every ``interval`` seconds (20 ms by default).
Polling sees states, not transitions: a state that lasts less than one interval
(FIN-WAIT-1 on a fast link, say) can be skipped, and the ``cause`` says so. Sockets on
loopback are left out (the benchmark's kernel-to-kernel baseline lives there).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from tcplab.kernel import sockdiag
from tcplab.kernel.sockets import KernelSocket, netlink_list
from tcplab.kernel.tracefs import (
    EVENTS,
    TracefsUnavailable,
    TraceInstance,
    TraceRecord,
    endpoints,
)
from tcplab.kernel.watch import HOLDBACK_NS, KernelWatch, WatchFilter, lookup_state
from tcplab.trace import Event, Trace
from tcplab.tun.netns import enter_netns, list_tcplab_namespaces, owner_alive
from tcplab.wire.checksum import ones_sum

__all__ = ["KernelStateWatcher", "socket_name"]

Key = tuple[str, int, str, int]
TCP_LISTEN = 10
TCP_SYN_RECV = 3
TCP_CLOSE = 7


def socket_name(s: KernelSocket) -> str:
    """The connection's name as the kernel sees it: ``local-remote``."""
    return f"{s.local_addr}:{s.local_port}-{s.remote_addr}:{s.remote_port}"


def headers_only(pkt: bytes | bytearray) -> bytes:
    """The IP and TCP headers of ``pkt``, its lengths (and IPv4 header checksum) made to
    fit: the same segment without its data.  Anything else is returned whole."""
    try:
        if pkt[0] >> 4 == 4:
            ihl = (pkt[0] & 0x0F) * 4
            n = ihl + (pkt[ihl + 12] >> 4) * 4
            if len(pkt) <= n:
                return bytes(pkt)
            hdr = bytearray(pkt[:n])
            hdr[2:4] = n.to_bytes(2, "big")
            hdr[10:12] = b"\0\0"
            hdr[10:12] = (~ones_sum(bytes(hdr[:ihl])) & 0xFFFF).to_bytes(2, "big")
            return bytes(hdr)
        if pkt[0] >> 4 == 6 and pkt[6] == 6:
            doff = (pkt[40 + 12] >> 4) * 4
            if len(pkt) <= 40 + doff:
                return bytes(pkt)
            hdr = bytearray(pkt[:40 + doff])
            hdr[4:6] = doff.to_bytes(2, "big")
            return bytes(hdr)
    except IndexError:
        pass
    return bytes(pkt)


def _u32(addr: str) -> int:
    """An IPv4 address as the tracepoint filter compares a ``__u8 addr[4]`` field."""
    return int.from_bytes(socket.inet_aton(addr), "little")


class KernelStateWatcher:
    """Follows the namespace's kernel TCP sockets in a thread; changes become events."""

    def __init__(self, netns: str, host: str = "kernel", interval: float = 0.02,
                 on_events: Callable[[], None] | None = None, trace: Trace | None = None,
                 address: str = "192.0.2.1", use_tracefs: bool = True,
                 peer: str = "tcplab", address6: str | None = None) -> None:
        self.netns = netns
        self.host = host
        self.interval = interval
        self.on_events = on_events
        self.trace = trace
        self.address = address
        self.address6 = address6  #: the kernel's IPv6 address (None: IPv6 not followed)
        self.use_tracefs = use_tracefs
        self.peer = peer
        self.mode = "starting"  # "tracepoints" or "polling"
        self.notice = ""  # why tracepoints are not used, when they are not
        self.pending: deque[Event] = deque()
        self.current: dict[Key, KernelSocket] = {}
        self.error: BaseException | None = None
        # Segments for the model, from the backend's thread (a bounded queue: if this
        # thread falls behind, the oldest are let go, and a state change may then be
        # told without the segment that caused it).
        self._segments: deque[tuple[int, bytes]] = deque(maxlen=20_000)
        #: state records one model follows before a fresh one takes over (memory bound)
        self.model_records = 20_000
        self.rotations = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kernelstate-{netns}",
                                        daemon=True)
        # Tracepoint mode: which kernel sockets are this namespace's.
        self._ns_link = ""
        self._mine: set[object] = set()
        self._my_listeners: set[tuple[str, int]] = set()
        self._pid_ns: dict[int, bool] = {}
        self._held: dict[object, list[TraceRecord]] = {}
        self._alone_checked = -1e9
        self._alone_cached = True

    def start(self, wait: float = 5.0) -> None:
        """Start the thread; return once it follows the kernel (or gave up)."""
        if self.trace is not None:
            self.trace.listeners.append(self._observe)
        self._thread.start()
        self._ready.wait(wait)

    def stop(self) -> None:
        """One last look, then the thread ends."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        if self.trace is not None:
            with contextlib.suppress(ValueError):
                self.trace.listeners.remove(self._observe)

    def drain(self) -> list[Event]:
        out: list[Event] = []
        while self.pending:
            out.append(self.pending.popleft())
        return out

    def _deliver(self, events: list[Event]) -> None:
        if events:
            self.pending.extend(events)
            if self.on_events is not None:
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    self.on_events()

    def _observe(self, ev: Event) -> None:
        """Trace listener (the backend's thread): remember the segments on the wire
        (their headers: the model reads addresses, ports and flags, never the data)."""
        if ev.get("kind") == "segment" and ev.get("event") in ("send", "recv"):
            raw = ev.get("raw")
            if isinstance(raw, (bytes, bytearray)):
                self._segments.append((round(float(ev["t"]) * 1e9), headers_only(raw)))

    # ------------------------------------------------------------ thread

    def _run(self) -> None:
        try:
            enter_netns(self.netns)
        except OSError as exc:
            self.error = exc
            self._ready.set()
            return
        instance = None
        if self.use_tracefs:
            instance = self._open_instance()
        try:
            if instance is not None:
                self.mode = "tracepoints"
                self._follow(instance)
            else:
                self.mode = "polling"
                self._ready.set()
                self._poll_loop()
        except BaseException as exc:  # handed to the backend, which reports it
            self.error = exc
        finally:
            self._ready.set()
            if instance is not None:
                instance.close()

    def _open_instance(self) -> TraceInstance | None:
        addr = _u32(self.address)
        state_filter = (f"protocol == 6 && ((family == 2 && (saddr == {addr} || "
                        f"daddr == {addr})) || family == 10)")
        inst = TraceInstance(EVENTS, {"sock/inet_sock_set_state": state_filter},
                             buffer_kb=1024, clock="mono")
        try:
            inst.open()
        except (TracefsUnavailable, OSError) as exc:
            self.notice = str(exc) if isinstance(exc, TracefsUnavailable) else (
                exc.strerror or str(exc))
            return None
        if inst.clock != "mono":
            inst.close()
            self.notice = "tracefs has no mono clock"
            return None
        self._ns_link = os.readlink("/proc/thread-self/ns/net")
        return inst

    def _model(self, symbols: dict[str, dict[str, dict[int, str]]], out: list[Event]
               ) -> KernelWatch:
        """A fresh model of the namespace's sockets, told about those that exist now."""
        watch = KernelWatch(filt=WatchFilter(), now_ns=time.monotonic_ns,
                            lookup=lookup_state, on_event=out.append,
                            host_names=(self.host, self.host), emit_segments=False,
                            symbols=symbols, peer_name=self.peer)
        with contextlib.suppress(OSError):
            for s in netlink_list():
                key = (s.local_addr, s.local_port, s.remote_addr, s.remote_port)
                if s.state == "LISTEN":
                    watch.know_listener(s.local_addr, s.local_port)
                    self._my_listeners.add((s.local_addr, s.local_port))
                else:
                    watch.know_connection(key, s.state)
        return watch

    def _follow(self, inst: TraceInstance) -> None:
        symbols = {fmt.name: fmt.symbols for fmt in inst.formats.values()}
        out: list[Event] = []
        # Sockets that exist already (a listener started before the backend).
        watch = self._model(symbols, out)
        retiring: KernelWatch | None = None
        retire_at = 0.0
        fed = 0
        self._ready.set()
        while True:
            stopping = self._stop.is_set()
            inst.wait(0 if stopping else self.interval)
            for rec in inst.read_available():
                for mine in self._ours(rec):
                    watch.feed_record(mine)
                    fed += 1
            while self._segments:
                ts, raw = self._segments.popleft()
                watch.feed_packet(ts, raw)
            if stopping:
                watch.finish()
            else:
                watch.advance()
            if retiring is not None:
                retiring.advance()  # what it still held back for ordering
                if stopping or time.monotonic() > retire_at:
                    retiring = None
            watch.events.clear()  # delivered through ``out``; the trace keeps them
            if fed > self.model_records and retiring is None and not stopping:
                # The model remembers every connection it saw: a server that runs for
                # hours would grow without end.  A new one starts from sock_diag's view
                # of the sockets alive now; the old one only drains what it held back.
                retiring, retire_at = watch, time.monotonic() + 4 * HOLDBACK_NS / 1e9
                watch = self._model(symbols, out)
                self.rotations += 1
                fed = 0
            for ev in out:
                ev["t"] = ev["t_ns"] / 1e9  # the event loop's clock: CLOCK_MONOTONIC
            self._deliver(out[:])
            out.clear()
            if stopping:
                return

    def _pid_here(self, pid: int) -> bool:
        known = self._pid_ns.get(pid)
        if known is None:
            try:
                known = os.readlink(f"/proc/{pid}/ns/net") == self._ns_link
            except OSError:
                known = False
            if len(self._pid_ns) < 10_000:
                self._pid_ns[pid] = known
        return known

    def _v6_ours(self, local: str, remote: str) -> bool:
        """An IPv6 socket with the kernel's IPv6 address (or its IPv4 one, mapped) at
        either end, or a wildcard listener."""
        if self.address6 is None:
            return False
        mine = (self.address6, f"::ffff:{self.address}")
        return local in mine or remote in mine or (local == "::" and remote == "::")

    def _alone(self) -> bool:
        """No other live tcplab namespace (checked at most once a second)."""
        now = time.monotonic()
        if now - self._alone_checked > 1.0:
            self._alone_checked = now
            self._alone_cached = not [n for n in list_tcplab_namespaces()
                                      if n != self.netns and owner_alive(n)]
        return self._alone_cached

    def _decide(self, rec: TraceRecord) -> bool | None:
        """Is this a socket of this namespace? None: not known until its local port is."""
        v = rec.values
        ends = endpoints(v)
        if ends is not None and ends[0] == 6 and not self._v6_ours(ends[1], ends[3]):
            return False  # the in-kernel filter passes IPv6 whole: not the device's address
        if not rec.in_irq and self._pid_here(rec.pid):
            return True  # a task inside the namespace made the call
        if ends is None:
            return False
        if v.get("oldstate") == TCP_LISTEN and v.get("newstate") == TCP_SYN_RECV and any(
                (a, ends[2]) in self._my_listeners for a in (ends[1], "0.0.0.0", "::")):
            return True  # a connection accepted by one of this namespace's listeners
        if self._alone():
            return True  # no other tcplab namespace: the address filter is enough
        if ends[2] == 0:
            return None  # connect() has not picked the port yet: ask with the next event
        key = ((ends[1], ends[2]), (ends[3], ends[4]))
        try:
            return any(r[4] == ends[2].to_bytes(2, "big") and r[5] == ends[4].to_bytes(2, "big")
                       for r in sockdiag.lookup(*key))
        except OSError:
            return False

    def _ours(self, rec: TraceRecord) -> list[TraceRecord]:
        """The records to follow now: this one (and any it decides) if the socket is ours."""
        v = rec.values
        sk = v.get("rx_sk") if rec.event == "kfree_skb" else v.get("skaddr")
        if sk in self._mine:
            if rec.event == "inet_sock_set_state" and v.get("newstate") == TCP_CLOSE:
                self._mine.discard(sk)  # the address may be a new socket's next time
            return [rec]
        if rec.event != "inet_sock_set_state":
            return []
        held = self._held.pop(sk, [])
        verdict = self._decide(rec)
        if verdict is None:
            if len(self._held) < 10_000:
                self._held[sk] = [*held, rec]
            return []
        if not verdict:
            return []
        if v.get("newstate") == TCP_LISTEN:
            ends = endpoints(v)
            if ends is not None:
                self._my_listeners.add((ends[1], ends[2]))
        if v.get("newstate") != TCP_CLOSE and len(self._mine) < 100_000:
            self._mine.add(sk)
        return [*held, rec]

    # ------------------------------------------------------------ polling

    def _poll_loop(self) -> None:
        while True:
            stopping = self._stop.is_set()
            with contextlib.suppress(OSError):
                self.poll()
            if stopping or self._stop.wait(self.interval):
                if not stopping:
                    continue  # one final poll after stop()
                return

    def poll(self) -> None:
        """Read the sockets once (from a thread inside the namespace) and diff."""
        t = time.monotonic()
        now: dict[Key, KernelSocket] = {}
        for s in netlink_list((4, 6) if self.address6 is not None else (4,)):
            if s.local_addr.startswith("127.") or s.remote_addr.startswith("127.") \
                    or s.local_addr == "::1" or s.remote_addr == "::1":
                continue
            now[(s.local_addr, s.local_port, s.remote_addr, s.remote_port)] = s
        prev = self.current
        new_events: list[Event] = []
        for key, s in now.items():
            old = prev.get(key)
            before = old.state if old is not None else "CLOSED"
            if before != s.state:
                new_events.append(self._event(t, socket_name(s), before, s.state,
                                              "seen by sock_diag"))
        for key, old in prev.items():
            if key not in now:
                new_events.append(self._event(t, socket_name(old), old.state, "CLOSED",
                                              "socket gone from sock_diag"))
        self.current = now
        self._deliver(new_events)

    def _event(self, t: float, conn: str, old: str, new: str, cause: str) -> Event:
        return {"t": t, "kind": "state", "host": self.host, "conn": conn, "from": old,
                "to": new, "cause": f"{cause} (polled every {self.interval * 1000:.0f} ms)"}
