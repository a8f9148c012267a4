"""The engine on a TUN device: an asyncio driver around a :class:`~tcplab.engine.host.Host`.

Theory of operation
-------------------
:class:`TunBackend` owns a private namespace (:class:`~tcplab.tun.netns.Namespace`),
a TUN device in it (:class:`~tcplab.tun.device.TunDevice`, the kernel's side is
192.0.2.1 and 2001:db8::1) and a Host for tcplab's stack (192.0.2.2 and 2001:db8::2).
It does what aioquic's asyncio layer does for QUIC, and nothing more:

* **input** - ``loop.add_reader`` on the TUN fd; on readiness, up to
  :attr:`read_batch` packets are read (one ``read`` is one IP packet, or one TCP
  super-segment of up to 64 KB when offloads are on, see :mod:`tcplab.tun.vnet`),
  checked, cleared of martian sources, and each segment goes to
  ``host.receive_segment``; then one :meth:`kick`;
* **output** - :meth:`kick` writes what ``host.transmit()`` produced.  With offloads,
  consecutive full-sized segments of one connection in that batch leave in one
  ``writev`` as one GSO super-segment (``gso_size`` = their size, checksum left to the
  kernel); the engine made each of them, so its congestion window and Nagle count
  real segments.  With the trace off the engine hands such a run over already joined
  (``host.cx.gso_max``, :attr:`Outgoing.gso`), decided segment by segment all the
  same.  Without offloads, one ``write`` per packet.  The asyncio layer
  (:mod:`tcplab.api.transports`) calls :meth:`kick` after every application call;
* **time** - one ``loop.call_at(host.next_deadline())``, re-armed only when the
  deadline moves earlier (a timer that fires early finds nothing due and is
  re-armed), so the hot path does not churn timer handles.  The engine's clock is
  ``loop.time()``, the same clock the asyncio layer uses.

**Martian sources.**  A packet whose source no real peer can have (0.0.0.0/8,
127.0.0.0/8, multicast, 255.255.255.255, tcplab's own addresses; ::, ::1, ff00::/8,
IPv4-mapped) is dropped before the engine sees it, with the reason in the trace, as
Linux's ``ip_route_input_slow`` and ``ip6_rcv_core`` drop them.

**The trace.**  Packets from the kernel are recorded as ``segment`` events with
``event="recv"`` and host ``"kernel"`` when tracing is on; a super-segment is one
event with its whole length and ``tso`` = its segment size (what tcpdump on the
device shows: one large packet), its checksum completed so the pcap holds a correct
packet.  tcplab's own segments are recorded by the engine at their real size; those
that left inside a super-segment get ``tso`` too.  The kernel's socket states come
from a :class:`~tcplab.tun.kernelstate.KernelStateWatcher` and are merged into the
same trace.  With tracing off (``Trace(enabled=False)``) the per-packet path is a
read, a check, ``host.receive_segment`` and a write.

Removal: :meth:`close` (also from ``async with``/``with``) stops the watcher, closes
the device and deletes the namespace; the namespace registry's :mod:`atexit`
hook is the last resort.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import subprocess
from collections.abc import Callable
from typing import Any

from tcplab.engine.config import TcpConfig
from tcplab.engine.context import Outgoing
from tcplab.engine.host import Host
from tcplab.kernel.sockets import KernelSocket, netlink_list
from tcplab.trace import Trace, segment_event, undecodable_event
from tcplab.tun.device import KERNEL_ADDR, KERNEL_ADDR6, STACK_ADDR, STACK_ADDR6, TunDevice
from tcplab.tun.kernelstate import KernelStateWatcher
from tcplab.tun.netns import Namespace
from tcplab.tun.vnet import (
    HDR_PLAIN,
    MAX_IP_PACKET,
    Decoded,
    can_follow,
    decode,
    fill_checksum,
    super_segment,
)
from tcplab.wire.checksum import addr_bytes
from tcplab.wire.errors import WireError

__all__ = ["KERNEL_ADDR", "KERNEL_ADDR6", "STACK_ADDR", "STACK_ADDR6", "TunBackend",
           "bulk_config", "martian_reason"]

# A read holds one IP packet: at most 64 KiB plus an IPv6 header, after the
# virtio-net header.
_READ_SIZE = 65536 + 128
# Room for the IP and TCP headers (with options) in a super-segment's 64 KiB.
_HEADROOM = 40 + 60
_V4_MAPPED = bytes(10) + b"\xff\xff"
_V6_LOOPBACK = bytes(15) + b"\x01"


def bulk_config(mtu: int = 1500, buf: int = 4 << 20) -> TcpConfig:
    """Settings for bulk transfer: large windows (scaled), MSS from the MTU, Linux's RTO_min,
    and slow start grown by every segment an ACK covers, as Linux grows it (the kernel
    acknowledges a 64 KB super-segment with one ACK; RFC 5681's one MSS per ACK would
    grow the window by one segment per 44)."""
    return TcpConfig(mss=mtu - 40, rcv_buf=buf, snd_buf=buf, window_scale=True, rto_min=0.2,
                     abc_limit=0)


def martian_reason(src: bytes, own: frozenset[bytes] = frozenset()) -> str | None:
    """Why no real peer can send from packed address ``src`` (None: it can).

    Linux's list (``ip_route_input_slow``: zeronet, loopback, multicast, limited
    broadcast; ``ip6_rcv_core``: multicast, loopback, IPv4-mapped; unspecified), plus
    the receiver's own addresses, which Linux rejects as a source from outside too."""
    if src in own:
        return "tcplab's own address"
    if len(src) == 4:
        first = src[0]
        if first == 0:
            return "unspecified address (0.0.0.0/8)"
        if first == 127:
            return "loopback address"
        if 224 <= first < 240:
            return "multicast address"
        if src == b"\xff\xff\xff\xff":
            return "limited broadcast address"
        return None
    if len(src) == 16:
        if src[0] == 0xFF:
            return "multicast address"
        if src == bytes(16):
            return "unspecified address (::)"
        if src == _V6_LOOPBACK:
            return "loopback address"
        if src[:12] == _V4_MAPPED:
            return "IPv4-mapped address"
    return None


class TunBackend:
    """tcplab's stack on a TUN device in a private namespace, driven by asyncio.

    ``family`` (4 or 6) picks which pair of addresses :attr:`addr` and
    :attr:`kernel_addr` name (both pairs are always configured); ``offload`` asks for
    the virtio-net header with checksum and TSO offloads (:attr:`offload_notice` says
    why, when the kernel refuses them)."""

    def __init__(self, *, mtu: int = 1500, config: TcpConfig | None = None,
                 trace: Trace | None = None, kernel_states: bool = True,
                 poll_interval: float = 0.02, rng: random.Random | None = None,
                 name: str = "tcplab", kernel_name: str = "kernel", family: int = 4,
                 offload: bool = True) -> None:
        if family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, not {family!r}")
        self.mtu = mtu
        self.family = family
        self.trace = trace if trace is not None else Trace()
        self.config = config or TcpConfig(mss=min(mtu, 65535) - 40)
        self.name = name
        self.kernel_name = kernel_name
        self.kernel_addrs = (KERNEL_ADDR, KERNEL_ADDR6)
        self.addrs = (STACK_ADDR, STACK_ADDR6)
        self.kernel_addr = KERNEL_ADDR if family == 4 else KERNEL_ADDR6
        self.addr = STACK_ADDR if family == 4 else STACK_ADDR6
        self.host = Host(name, list(self.addrs), config=self.config,
                         rng=rng if rng is not None else random.Random(), trace=self.trace)
        self._own = frozenset(addr_bytes(a) for a in self.addrs)
        self.ns = Namespace()
        self.device: TunDevice | None = None
        self.watcher: KernelStateWatcher | None = None
        self.want_offload = offload
        self.vnet = False  #: the device carries virtio-net headers (offloads on)
        self.offload_notice = ""  #: one line: why offloads were asked for and not given
        self._want_states = kernel_states
        self._poll_interval = poll_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.read_batch = 512
        self.packets_in = 0
        self.packets_out = 0
        self.super_in = 0  #: GSO super-segments read (each counts once in packets_in)
        self.super_out = 0  #: GSO super-segments written (each counts once in packets_out)
        self.write_errors = 0
        self.martians = 0  #: packets dropped for their source address
        self.rotations = 0  #: fresh models of the kernel's sockets (known once closed)
        self.malformed = 0  #: packets that failed the checks before the engine

    # ------------------------------------------------------------ life

    def open(self) -> None:
        """Create the namespace and the device (no event loop needed yet)."""
        try:
            self.ns.create()
            self.device = TunDevice.create(self.ns, self.mtu, offload=self.want_offload)
            self._fd = self.device.fd
            self.vnet = self.device.vnet
            # With offloads the engine may hand over runs of full segments whole
            # (while the trace is off); the device cuts them.
            self.host.cx.gso_max = MAX_IP_PACKET - _HEADROOM if self.vnet else 0
            self.offload_notice = self.device.notice
        except BaseException:
            self.close()
            raise

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Attach to the running loop: reader, timer, kernel-state watcher."""
        if self.device is None:
            self.open()
        self._loop = loop or asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)
        if self.offload_notice and self.trace.enabled:
            self.trace.note(self._loop.time(), self.offload_notice)
        if self._want_states and self.trace.enabled:
            lp = self._loop

            def wake() -> None:
                lp.call_soon_threadsafe(self._drain_states)

            self.watcher = KernelStateWatcher(self.ns.name, self.kernel_name,
                                              self._poll_interval, on_events=wake,
                                              trace=self.trace, address=KERNEL_ADDR,
                                              address6=KERNEL_ADDR6)
            self.watcher.start()

    def close(self) -> None:
        """Stop everything and remove the device and the namespace.  Idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.watcher is not None:
            self.watcher.on_events = None
            self.watcher.stop()
            self._drain_states()
            self.rotations = self.watcher.rotations
            self.watcher = None
        if self._loop is not None and self._fd >= 0:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
        self._loop = None
        if self.device is not None:
            self.device.close()
            self.device = None
        self._fd = -1
        self.ns.remove()

    def __enter__(self) -> TunBackend:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> TunBackend:
        self.open()
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @property
    def netns(self) -> str:
        return self.ns.name

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("TunBackend.start() has not been called")
        return self._loop

    # ------------------------------------------------------------ input

    def _readable(self) -> None:
        fd = self._fd
        read = os.read
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        vnet = self.vnet
        tracing = self.trace.enabled
        host = self.host
        receive = host.receive_segment
        own = self._own
        addrs = self.addrs
        cx = host.cx
        n = 0
        for _ in range(self.read_batch):
            try:
                buf = read(fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    break
                raise
            n += 1
            try:
                d = decode(buf, vnet=vnet)
            except WireError as exc:
                self._malformed(buf, exc.reason, now)
                continue
            if d.gso_size:
                self.super_in += 1
            pid = self._trace_in(d, now) if tracing else None
            if martian_reason(d.src_raw, own) is not None:
                self._martian(d, pid, now)
                continue
            cx.packet_id = pid
            if d.dst in addrs:
                receive(d.src, d.dst, d.seg, now)
            else:
                cx.record(d.src, d.dst, d.seg, now, "not addressed to this host")
        self.packets_in += n
        self.kick()

    def _malformed(self, buf: bytes, reason: str, now: float) -> None:
        """A packet that failed the checks: counted (TcpInErrs) and traced with its reason."""
        self.malformed += 1
        self.host.counters.inc("TcpInErrs")
        tr = self.trace
        if tr.enabled:
            size = len(buf) - (10 if self.vnet else 0)
            tr.add(undecodable_event(now, self.name, tr.next_id(), max(size, 0), reason))

    def _martian(self, d: Decoded, pid: int | None, now: float) -> None:
        self.martians += 1
        tr = self.trace
        if tr.enabled:
            why = martian_reason(d.src_raw, self._own)
            ev = segment_event(now, "drop", self.name, d.src, d.dst, d.seg, pid,
                               fate="dropped", reason=f"martian source {d.src}: {why}")
            del ev["opts"]
            tr.add(ev)

    def _trace_in(self, d: Decoded, now: float) -> int:
        """Record a packet from the kernel as a ``recv`` segment event; its id."""
        tr = self.trace
        pid = tr.next_id()
        ev = segment_event(now, "recv", self.kernel_name, d.src, d.dst, d.seg, pid,
                           raw=fill_checksum(d))
        if d.gso_size:
            ev["tso"] = d.gso_size
        tr.add(ev)
        return pid

    # ------------------------------------------------------------ output

    def kick(self) -> None:
        """Write what the engine produced to the device and re-arm the timer."""
        host = self.host
        if host.outbox:
            out = host.transmit()
            if self.vnet:
                self._write_vnet(out)
            else:
                self._write_plain(out)
        deadline = host.next_deadline()
        if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            loop = self._loop
            if loop is None:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = loop.call_at(deadline, self._on_timer)

    def _write_plain(self, out: list[Outgoing]) -> None:
        fd = self._fd
        write = os.write
        for o in out:
            try:
                write(fd, o.data)
            except OSError:
                # The kernel dropped it (device down, queue full): like a loss on a
                # wire; TCP's retransmission repairs it.
                self.write_errors += 1
                if o.event is not None:
                    o.event["fate"] = "dropped"
        self.packets_out += len(out)

    def _write_vnet(self, out: list[Outgoing]) -> None:
        """Runs of full-sized segments of one connection leave as one super-segment."""
        fd = self._fd
        writev = os.writev
        n = len(out)
        i = 0
        writes = 0
        while i < n:
            o = out[i]
            seg = o.seg
            j = i + 1
            if o.gso:
                # the engine made a super-segment of full segments itself
                bufs = super_segment(o.src, o.dst, [seg], o.gso)
                self.super_out += 1
                try:
                    writev(fd, bufs)
                except OSError:
                    self.write_errors += 1
                    if o.event is not None:
                        o.event["fate"] = "dropped"
                writes += 1
                i = j
                continue
            size = len(seg.payload)
            if size:
                room = MAX_IP_PACKET - _HEADROOM - size
                prev = seg
                while j < n and room >= size:
                    nxt = out[j]
                    s = nxt.seg
                    if nxt.dst != o.dst or nxt.src != o.src or not can_follow(prev, s, size):
                        break
                    room -= len(s.payload)
                    prev = s
                    j += 1
            if j - i > 1:
                run = out[i:j]
                bufs = super_segment(o.src, o.dst, [x.seg for x in run])
                self.super_out += 1
            elif o.event is not None:
                run = None
                bufs = [HDR_PLAIN, o.data]  # built for the trace, checksum complete
            else:
                run = None
                bufs = super_segment(o.src, o.dst, [seg])  # the kernel sums it
            try:
                writev(fd, bufs)
            except OSError:
                self.write_errors += 1
                for x in (run if run is not None else [o]):
                    if x.event is not None:
                        x.event["fate"] = "dropped"
            else:
                if run is not None and run[0].event is not None:
                    for x in run:
                        if x.event is not None:
                            x.event["tso"] = size
            writes += 1
            i = j
        self.packets_out += writes

    def _on_timer(self) -> None:
        loop = self._loop
        if loop is None:
            return
        due = self._timer_at
        self._timer = None
        self._timer_at = None
        now = loop.time()
        # call_at may run a hair before the deadline (clock resolution).
        self.host.handle_timers(max(now, due) if due is not None else now)
        self.kick()

    # ------------------------------------------------------------ kernel side

    def _drain_states(self) -> None:
        w = self.watcher
        if w is None:
            return
        for ev in w.drain():
            self.trace.add(ev)

    def kernel_sockets(self) -> list[KernelSocket]:
        """The namespace's TCP sockets now, IPv4 and IPv6 (sock_diag, read from inside)."""
        return self.ns.call(lambda: netlink_list((4, 6)))

    async def wait_kernel(self, pred: Callable[[list[KernelSocket]], bool], timeout: float = 5.0,
                          what: str = "kernel socket state") -> list[KernelSocket]:
        """Poll the kernel's sockets until ``pred`` holds; TimeoutError names ``what``."""
        loop = self.loop
        end = loop.time() + timeout
        while True:
            socks = await loop.run_in_executor(None, self.kernel_sockets)
            if pred(socks):
                return socks
            if loop.time() > end:
                states = ", ".join(f"{s.state} {s.local}->{s.remote}" for s in socks) or "none"
                raise TimeoutError(f"timed out after {timeout} s waiting for {what} "
                                   f"(kernel sockets: {states})")
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------ helpers

    def popen_in_ns(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a process inside the namespace (terminated on close)."""
        return self.ns.popen(argv, **kwargs)

    def url_host(self, addr: str | None = None) -> str:
        """An address as a URL's host: ``192.0.2.2`` or ``[2001:db8::2]``."""
        a = addr if addr is not None else self.addr
        return f"[{a}]" if ":" in a else a

