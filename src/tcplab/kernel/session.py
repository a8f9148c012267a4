"""One run of ``tcplab watch``: open the sources, pump them into a KernelWatch, close all.

:class:`WatchSession` opens, in this order, a private tracefs instance with the TCP
events and their in-kernel filters (:mod:`tcplab.kernel.tracefs`), an AF_PACKET capture
(:mod:`tcplab.kernel.capture`), and takes a sock_diag snapshot of the sockets already
there (listeners, live connections, and with ``--pid`` the process's own sockets). Where
tracefs is not available it says so in one notice and polls sock_diag instead
(:class:`tcplab.kernel.watch.PolledStates`); without a capture (no CAP_NET_RAW), states
only.

:meth:`WatchSession.run` waits on every per-CPU trace buffer and the packet socket at
once (``select``), hands what arrived to the :class:`~tcplab.kernel.watch.KernelWatch`,
and returns at the deadline, when ``stop`` is set, or on Ctrl+C. :meth:`close` is
idempotent and runs from ``with``; the instance also has an :mod:`atexit` hook, and a
later run removes instances left by a dead tcplab.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

from tcplab.kernel import sockdiag
from tcplab.kernel.capture import Capture
from tcplab.kernel.tracefs import EVENTS, TracefsUnavailable, TraceInstance
from tcplab.kernel.watch import (
    KernelWatch,
    PolledStates,
    WatchFilter,
    clock_now,
    packet_clock_offset,
    process_sockets,
)
from tcplab.signals import deferred, interrupt_handled, raise_if_interrupted
from tcplab.trace import Event

__all__ = ["WatchSession", "kernel_filters"]

_CAPTURE_ERRORS = (OSError,)


def kernel_filters(port_list: tuple[int, ...] = ()) -> dict[str, str]:
    """The filter each event gets in the kernel: TCP only, and the ports at either end."""
    ports = ("(" + " || ".join(f"sport == {p} || dport == {p}" for p in port_list) + ")"
             if port_list else "")
    out = {
        "sock/inet_sock_set_state": "protocol == 6" + (f" && {ports}" if ports else ""),
        "skb/kfree_skb": "(protocol == 2048 || protocol == 34525) && rx_sk != 0",
    }
    if ports:
        for ev in ("tcp/tcp_retransmit_skb", "tcp/tcp_retransmit_synack",
                   "tcp/tcp_receive_reset"):
            out[ev] = ports
    return out


class WatchSession:
    """tracefs (or polling), a capture, a snapshot, and the KernelWatch they feed."""

    def __init__(self, filt: WatchFilter, *, lang: str = "en",
                 on_event: Callable[[Event], None] | None = None,
                 notice: Callable[[str], None] | None = None,
                 poll_interval: float = 0.01, capture: bool = True,
                 use_tracefs: bool = True) -> None:
        self.filt = filt
        self.lang = lang
        self.on_event = on_event
        self.notice = notice or (lambda text: None)
        self.poll_interval = poll_interval
        self.want_capture = capture
        self.use_tracefs = use_tracefs
        self.instance: TraceInstance | None = None
        self.poller: PolledStates | None = None
        self.capture: Capture | None = None
        self.clock = "realtime"
        self.offset = 0
        self.watch: KernelWatch | None = None
        self.notices: list[str] = []
        self.started_ns = 0

    def _notice(self, text: str) -> None:
        self.notices.append(text)
        self.notice(text)

    # ------------------------------------------------------------ life

    def open(self) -> None:
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        if self.use_tracefs:
            inst = TraceInstance(EVENTS, kernel_filters(self.filt.ports))
            try:
                inst.open()
            except (TracefsUnavailable, OSError) as exc:
                why = str(exc) if isinstance(exc, TracefsUnavailable) else (
                    exc.strerror or str(exc))
                self._notice(f"tracefs is not available ({why}): polling sock_diag every "
                             f"{self.poll_interval * 1000:g} ms instead, so states shorter "
                             "than that are missed")
            else:
                self.instance = inst
                self.clock = inst.clock
                if inst.missing:
                    self._notice("this kernel lacks " + ", ".join(
                        e.replace("/", ":") for e in inst.missing) + "; watching without")
        if self.instance is None:
            self.poller = PolledStates(self.filt, self.poll_interval, time.time_ns)
        if self.want_capture:
            cap = Capture(self.filt.ports)
            try:
                cap.open()
            except _CAPTURE_ERRORS as exc:
                self._notice(f"no packet capture ({getattr(exc, 'strerror', None) or exc}): "
                             "states only, no segments")
            else:
                self.capture = cap
        self.offset = packet_clock_offset(self.clock)
        clock = self.clock
        self.started_ns = clock_now(clock)
        symbols = {}
        if self.instance is not None:
            symbols = {fmt.name: fmt.symbols for fmt in self.instance.formats.values()}
        self.watch = KernelWatch(filt=self.filt, lang=self.lang, t0_ns=self.started_ns,
                                 now_ns=lambda: clock_now(clock), on_event=self.on_event,
                                 symbols=symbols)
        self._snapshot()
        if self.poller is not None:
            self.poller.poll()  # the starting point: later polls report changes

    def _snapshot(self) -> None:
        """Teach the watch the listeners and connections that exist already."""
        assert self.watch is not None
        owned: set[int] = set()
        if self.filt.pid is not None:
            owned = process_sockets(self.filt.pid)
        for fam in (4, 6):
            try:
                records = sockdiag.dump(fam)
            except OSError:
                continue
            if self.filt.ports:
                records = sockdiag.keep_ports(records, self.filt.ports)
            cols = sockdiag.to_columns(fam, records)
            for st, la, lp, ra, rp, inode in zip(cols[1], cols[2], cols[3], cols[4], cols[5],
                                                 cols[12], strict=True):
                mine = inode in owned
                if st == "LISTEN":
                    self.watch.know_listener(la, lp, mine)
                else:
                    self.watch.know_connection((la, lp, ra, rp), st, pid_owned=mine)

    def close(self) -> None:
        with deferred():
            self._close()

    def _close(self) -> None:
        if self.instance is not None:
            self.instance.close()
            self.instance = None
        if self.capture is not None:
            self.capture.close()
            self.capture = None

    def __enter__(self) -> WatchSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ running

    @property
    def source(self) -> str:
        return "tracepoints" if self.instance is not None else "sock_diag polling"

    def pump(self) -> None:
        """Hand everything that arrived to the watch."""
        watch = self.watch
        assert watch is not None
        if self.instance is not None:
            for rec in self.instance.read_available():
                watch.feed_record(rec)
        if self.capture is not None:
            off = self.offset
            for pkt in self.capture.read_available():
                watch.feed_packet(pkt.ts_ns + off, pkt.data)
        if self.poller is not None:
            with contextlib.suppress(OSError):
                for ch in self.poller.poll():
                    watch.feed_state(ch)
        watch.advance()

    def run(self, duration: float | None = None, stop: threading.Event | None = None
            ) -> str:
        """Pump until the deadline, ``stop`` or Ctrl+C; then everything left. Why it ended."""
        watch = self.watch
        assert watch is not None
        deadline = None if duration is None else time.monotonic() + duration
        why = "stopped"
        try:
            while True:
                if stop is not None and stop.is_set():
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    why = "duration"
                    break
                timeout = 0.05 if left is None else max(0.0, min(0.05, left))
                if self.poller is not None:
                    timeout = min(timeout, self.poll_interval)
                self._wait(timeout)
                self.pump()
                raise_if_interrupted()  # a Ctrl+C that Python swallowed (signals.py)
        except KeyboardInterrupt:
            interrupt_handled()
            why = "interrupted"
        self.pump()
        watch.finish()
        return why

    def _wait(self, timeout: float) -> None:
        extra = [self.capture.fileno()] if self.capture is not None else []
        if self.instance is not None:
            self.instance.wait(timeout, extra)
        elif extra:
            import select

            with contextlib.suppress(InterruptedError):
                select.select(extra, [], [], timeout)
        else:
            time.sleep(timeout)

    def meta(self) -> dict[str, object]:
        """What the JSON trace says about where its events came from."""
        inst = self.instance
        return {
            "source": self.source,
            "clock": self.clock,
            "t0_ns": self.started_ns,
            "tracepoints": [e.replace("/", ":") for e in inst.enabled] if inst else [],
            "kernel_filters": {e.replace("/", ":"): f for e, f in inst.filters.items()
                               if e in inst.enabled and e not in inst.unfiltered}
            if inst else {},
            "capture": self.capture is not None,
            "notices": list(self.notices),
            "kernel": os.uname().release,
        }
