"""The kernel's TCP states inside a namespace, polled through sock_diag.

A thread enters the namespace (:func:`~tcplab.tun.netns.enter_netns`) and asks
sock_diag (:func:`tcplab.kernel.sockets.netlink_list`, the reader ``tcplab
sockets`` uses) for every IPv4 TCP socket every ``interval`` seconds (20 ms by
default).  Each change of a socket's state becomes a ``state`` event with host
``"kernel"``; a socket that disappears goes to CLOSED.  Sockets on loopback are
left out (the benchmark's kernel-to-kernel baseline lives there).

Polling sees states, not transitions: a state that lasts less than one interval
(FIN-WAIT-1 on a fast link, say) can be skipped, and the ``cause`` says so.
The state names are the RFC spellings the reader already maps Linux's
``TCP_*`` numbers to (``TCP_TIME_WAIT`` -> ``TIME-WAIT``, ``TCP_NEW_SYN_RECV`` ->
``SYN-RECEIVED``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable

from tcplab.kernel.sockets import KernelSocket, netlink_list
from tcplab.trace import Event
from tcplab.tun.netns import enter_netns

__all__ = ["KernelStateWatcher", "socket_name"]

Key = tuple[str, int, str, int]


def socket_name(s: KernelSocket) -> str:
    """The connection's name as the kernel sees it: ``local-remote``."""
    return f"{s.local_addr}:{s.local_port}-{s.remote_addr}:{s.remote_port}"


class KernelStateWatcher:
    """Polls the namespace's TCP sockets in a thread; state changes become events."""

    def __init__(self, netns: str, host: str = "kernel", interval: float = 0.02,
                 on_events: Callable[[], None] | None = None) -> None:
        self.netns = netns
        self.host = host
        self.interval = interval
        self.on_events = on_events
        self.pending: deque[Event] = deque()
        self.current: dict[Key, KernelSocket] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sockdiag-{netns}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """One last poll, then the thread ends."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _run(self) -> None:
        try:
            enter_netns(self.netns)
        except OSError as exc:
            self.error = exc
            return
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
        for s in netlink_list((4,)):
            if s.local_addr.startswith("127.") or s.remote_addr.startswith("127."):
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
        if new_events:
            self.pending.extend(new_events)
            if self.on_events is not None:
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    self.on_events()

    def _event(self, t: float, conn: str, old: str, new: str, cause: str) -> Event:
        return {"t": t, "kind": "state", "host": self.host, "conn": conn, "from": old,
                "to": new, "cause": f"{cause} (polled every {self.interval * 1000:.0f} ms)"}

    def drain(self) -> list[Event]:
        out: list[Event] = []
        while self.pending:
            out.append(self.pending.popleft())
        return out
