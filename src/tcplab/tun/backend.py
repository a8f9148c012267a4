"""The engine on a TUN device: an asyncio driver around a :class:`~tcplab.engine.host.Host`.

Theory of operation
-------------------
:class:`TunBackend` owns a private namespace (:class:`~tcplab.tun.netns.Namespace`),
a TUN device in it (:class:`~tcplab.tun.device.TunDevice`, the kernel's side is
192.0.2.1) and a Host for tcplab's stack (192.0.2.2).  It does what aioquic's
asyncio layer does for QUIC, and nothing more:

* **input** - ``loop.add_reader`` on the TUN fd; on readiness, up to
  :attr:`read_batch` packets are read (one ``read`` is one IP packet) and each
  goes to ``host.receive(packet, now)``; then one :meth:`kick`;
* **output** - :meth:`kick` writes every packet of ``host.transmit()`` to the fd
  (one ``write`` per packet: TUN without a virtio header takes no batches) and
  re-arms the timer.  The asyncio layer (:mod:`tcplab.api.transports`) calls it after every
  application call;
* **time** - one ``loop.call_at(host.next_deadline())``, re-armed only when the
  deadline moves earlier (a timer that fires early finds nothing due and is
  re-armed), so the hot path does not churn timer handles.  The engine's clock is
  ``loop.time()``, the same clock the asyncio layer uses.

Packets from the kernel are recorded as ``segment`` events with ``event="recv"``
and host ``"kernel"`` when tracing is on; the kernel's socket states come from a
:class:`~tcplab.tun.kernelstate.KernelStateWatcher` and are merged into the same
trace.  With tracing off (``Trace(enabled=False)``) the per-packet path is a read,
``host.receive`` and a write.

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
from tcplab.engine.host import Host
from tcplab.kernel.sockets import KernelSocket, netlink_list
from tcplab.trace import Trace, segment_event
from tcplab.tun.device import KERNEL_ADDR, STACK_ADDR, TunDevice
from tcplab.tun.kernelstate import KernelStateWatcher
from tcplab.tun.netns import Namespace
from tcplab.wire.errors import WireError
from tcplab.wire.ip import parse_ip_tcp

__all__ = ["KERNEL_ADDR", "STACK_ADDR", "TunBackend", "bulk_config"]

_READ_SIZE = 65536 + 64


def bulk_config(mtu: int = 1500, buf: int = 4 << 20) -> TcpConfig:
    """Settings for bulk transfer: large windows (scaled), MSS from the MTU, Linux's RTO_min."""
    return TcpConfig(mss=mtu - 40, rcv_buf=buf, snd_buf=buf, window_scale=True, rto_min=0.2)


class TunBackend:
    """tcplab's stack on a TUN device in a private namespace, driven by asyncio."""

    def __init__(self, *, mtu: int = 1500, config: TcpConfig | None = None,
                 trace: Trace | None = None, kernel_states: bool = True,
                 poll_interval: float = 0.02, rng: random.Random | None = None,
                 name: str = "tcplab", kernel_name: str = "kernel") -> None:
        self.mtu = mtu
        self.trace = trace if trace is not None else Trace()
        self.config = config or TcpConfig(mss=min(mtu, 65535) - 40)
        self.name = name
        self.kernel_name = kernel_name
        self.kernel_addr = KERNEL_ADDR
        self.addr = STACK_ADDR
        self.host = Host(name, STACK_ADDR, config=self.config,
                         rng=rng if rng is not None else random.Random(), trace=self.trace)
        self.ns = Namespace()
        self.device: TunDevice | None = None
        self.watcher: KernelStateWatcher | None = None
        self._want_states = kernel_states
        self._poll_interval = poll_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.read_batch = 512
        self.packets_in = 0
        self.packets_out = 0
        self.write_errors = 0

    # ------------------------------------------------------------ life

    def open(self) -> None:
        """Create the namespace and the device (no event loop needed yet)."""
        try:
            self.ns.create()
            self.device = TunDevice.create(self.ns, self.mtu)
            self._fd = self.device.fd
        except BaseException:
            self.close()
            raise

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Attach to the running loop: reader, timer, kernel-state watcher."""
        if self.device is None:
            self.open()
        self._loop = loop or asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)
        if self._want_states and self.trace.enabled:
            lp = self._loop

            def wake() -> None:
                lp.call_soon_threadsafe(self._drain_states)

            self.watcher = KernelStateWatcher(self.ns.name, self.kernel_name,
                                              self._poll_interval, on_events=wake,
                                              trace=self.trace, address=self.kernel_addr)
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

    # ------------------------------------------------------------ hot path

    def _readable(self) -> None:
        fd = self._fd
        host = self.host
        read = os.read
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        tracing = self.trace.enabled
        n = 0
        for _ in range(self.read_batch):
            try:
                pkt = read(fd, _READ_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    break
                raise
            n += 1
            if tracing:
                host.receive(pkt, now, self._trace_in(pkt, now))
            else:
                host.receive(pkt, now)
        self.packets_in += n
        self.kick()

    def kick(self) -> None:
        """Write what the engine produced to the device and re-arm the timer."""
        host = self.host
        if host.outbox:
            fd = self._fd
            write = os.write
            out = host.transmit()
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
        deadline = host.next_deadline()
        if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            loop = self._loop
            if loop is None:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = loop.call_at(deadline, self._on_timer)

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

    def _trace_in(self, pkt: bytes, now: float) -> int | None:
        """Record a packet from the kernel as a ``recv`` segment event; its id."""
        try:
            ip, seg = parse_ip_tcp(pkt)
        except WireError:
            return None  # the host records the drop with its reason
        tr = self.trace
        pid = tr.next_id()
        tr.add(segment_event(now, "recv", self.kernel_name, ip.src, ip.dst, seg, pid, raw=pkt))
        return pid

    # ------------------------------------------------------------ kernel side

    def _drain_states(self) -> None:
        w = self.watcher
        if w is None:
            return
        for ev in w.drain():
            self.trace.add(ev)

    def kernel_sockets(self) -> list[KernelSocket]:
        """The namespace's IPv4 TCP sockets now (sock_diag, read from inside)."""
        return self.ns.call(lambda: netlink_list((4,)))

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
