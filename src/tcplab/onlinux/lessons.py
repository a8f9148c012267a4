"""The demo and the catalogue's scenarios, as programs for two Linux kernels.

Each function here builds a :class:`~tcplab.onlinux.run.Lesson`: the same story as the
simulator's scenario (:mod:`tcplab.scenarios`), told with real sockets: the same
ports, data, pauses and notes (with the same catalogue keys, so the pictures tell
them in English or Chinese), and the same disturbances on the wire (a SYN held up,
the last ACK lost) as rules of the middlebox. Where the simulator *chooses* something
a kernel does not let a program choose (ISNs, a server that is a script), the
scenario is not offered on Linux, and :data:`NOT_ON_LINUX` says why.

Every program is bounded: each blocking call has the lesson's timeout, and the run
has a time limit.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
from collections.abc import Callable

from tcplab.engine.profiles import configured
from tcplab.engine.retries import model_timeout
from tcplab.faults import matches, parse
from tcplab.onlinux.middlebox import Rule, Seen
from tcplab.onlinux.run import Lesson, Progress
from tcplab.onlinux.sides import Side, errname
from tcplab.onlinux.testbed import CLIENT_ADDR, SERVER_ADDR
from tcplab.scenarios.base import REQUEST, RESPONSE, Switches
from tcplab.wire.ip import emit_ip_tcp
from tcplab.wire.tcp import SYN, Mss, TcpSegment

__all__ = ["LESSONS", "NOT_ON_LINUX", "LessonError", "demo_lesson", "lesson_for",
           "syn_budget"]

DELAY = 0.05


class LessonError(ValueError):
    """A scenario or switch that has no meaning on Linux (one line says why)."""


def syn_budget(sysctls: tuple[str, ...] = ()) -> float:
    """How long this kernel's connect() may keep sending SYNs before ETIMEDOUT, at most
    (seconds): ``tcp_model_timeout(tcp_syn_retries, 1 s)`` plus the linear timeouts. 131 s
    for the defaults, as measured; with tcp_syn_retries=2 connect() gives up after 7 s, the
    time budget running out before the count (the engine's linux profile has both rules)."""
    cfg = configured("linux", sysctls)
    return model_timeout(cfg.syn_retries, 1.0) + cfg.syn_linear_timeouts


def _failed(side: Side, call: str, exc: BaseException, started_ns: int) -> None:
    """A call failed: what, when, after how long (as the simulator's demo records it)."""
    after = round((side.now_ns() - started_ns) / 1e9, 3)
    side.note(f"{side.name}: {call}() failed: {errname(exc)} after {after:g} s",
              key="demo.failed", fact="call-failed", host=side.name, label=call,
              result=errname(exc), after=after)


def _listener(side: Side, port: int, *, reuse: bool = True, backlog: int = 128
              ) -> socket.socket:
    srv = side.socket()
    if reuse:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(backlog)
    return srv


# --------------------------------------------------------------------------- demo


def _payload(size: int | None, default: bytes, fill: bytes) -> bytes:
    if size is None:
        return default
    return (fill * (size // len(fill) + 1))[:size]


def demo_lesson(delay: float = DELAY, sysctls: tuple[str, ...] = (), *,
                request: int | None = None, response: int | None = None,
                think: float | None = None, exam: bool = False) -> Lesson:
    """``tcplab demo`` on Linux (:func:`tcplab.scenarios.demo.run_demo`'s story): the
    handshake, a request and its response, the client closes first, the server
    ``think`` s later (0.2 s; 0 in exam mode), TIME-WAIT (not waited out). A step that
    fails is noted as in the simulator (``demo.failed``) and the story goes on with what
    still makes sense. Exam mode sets TCP_NODELAY on both ends; the request cannot ride
    on the handshake's third segment as in the simulator: Linux refuses send() in
    SYN-SENT (without TCP Fast Open)."""
    budget = syn_budget(sysctls)
    patience = budget + 10 * delay + 5
    req = _payload(request, REQUEST, b"request ")
    resp = _payload(response, RESPONSE, b"response ")
    pause = think if think is not None else (0.0 if exam else 0.2)

    def server(side: Side) -> None:
        srv = _listener(side, 80)
        side.note("server: socket(), bind(80), listen()", key="app.listen", port=80)
        side.signal("listening")
        since = side.now_ns()
        srv.settimeout(patience)
        try:
            conn, _addr = srv.accept()
        except OSError as exc:
            _failed(side, "accept", exc, since)
            return
        side.signal("accepted")
        if exam:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(patience)
        got = _recv(side, conn, len(req))
        if len(got) == len(req):
            side.note("server: request received; send the response", key="demo.respond",
                      n=len(resp))
            if _send(side, conn, resp):
                side.signal("answered")
        since = side.now_ns()
        try:
            rest = conn.recv(4096)  # the server's recv() returns b"": end of stream
            while rest:
                rest = conn.recv(4096)
        except OSError as exc:
            _failed(side, "recv", exc, since)
        side.sleep(pause)  # the server's application takes a moment before it closes
        side.note("server: recv() returned b'' (end of stream); close()",
                  key="demo.server-close", d=pause)
        conn.close()
        # The listener stays open while the run lasts: the simulator closes it only once
        # the connection's life is over, TIME-WAIT included.
        side.wait("end")

    def client(side: Side) -> None:
        side.wait("listening")
        cli = side.socket(timeout=patience)
        if exam:
            cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        side.note("client: connect(192.0.2.2:80)", key="demo.connect", to=f"{SERVER_ADDR}:80")
        started = side.now_ns()
        try:
            cli.connect((SERVER_ADDR, 80))
        except OSError as exc:
            _failed(side, "connect", exc, started)
            return
        # The simulator's story is one program: connect(), accept(), then send().
        side.wait("accepted", patience)
        side.note("client: send an HTTP request", key="demo.request", n=len(req))
        if _send(side, cli, req):
            _recv(side, cli, len(resp))
        side.note("client: response received; close(): the client closes first",
                  key="demo.close")
        cli.close()

    return Lesson("demo", {"server": server, "client": client}, delay=delay,
                  limit=max(60.0, patience + 10), main=("client",))


def _send(side: Side, sock: socket.socket, data: bytes) -> bool:
    since = side.now_ns()
    try:
        sock.sendall(data)
    except OSError as exc:
        _failed(side, "send", exc, since)
        return False
    return True


def _recv(side: Side, sock: socket.socket, n: int) -> bytes:
    since = side.now_ns()
    got = b""
    try:
        got = side.recv_exactly(sock, n)
    except OSError as exc:
        _failed(side, "recv", exc, since)
    return got


# --------------------------------------------------------------------------- helpers


def _name(sock: socket.socket) -> str:
    """The connection's name as the trace gives it: ``laddr:lport-raddr:rport``."""
    la, lp = sock.getsockname()[:2]
    ra, rp = sock.getpeername()[:2]
    return f"{la}:{lp}-{ra}:{rp}"


def _wait_connected(side: Side, sock: socket.socket, timeout: float) -> int:
    """Wait for a non-blocking connect() to finish; its SO_ERROR (0: connected)."""
    deadline = side.now_ns() + int(timeout * 1e9)
    while side.now_ns() < deadline:
        _r, w, _x = select.select([], [sock], [], 0.05)
        side.sleep(0)
        if w:
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return errno.ETIMEDOUT


def _exchange(side: Side, cli: socket.socket, mark: str) -> None:
    """The client's side of a request and its response (the server signals ``mark``),
    sent once the server has accepted the connection, as in the simulator's stories
    (one program: connect(), accept(), then send())."""
    side.wait("accepted")
    cli.sendall(REQUEST)
    side.recv_exactly(cli, len(RESPONSE))
    side.wait(mark)


def _serve_one(side: Side, srv: socket.socket, mark: str) -> socket.socket:
    """Accept one connection, read the request, send the response, signal ``mark``."""
    conn, _addr = srv.accept()
    side.signal("accepted")
    conn.settimeout(side.sides.limit)
    side.recv_exactly(conn, len(REQUEST))
    conn.sendall(RESPONSE)
    side.signal(mark)
    return conn


class AcceptAll:
    """A server that accepts every connection at once and reads what each sends, as the
    simulator's (:class:`tcplab.scenarios.opening.AcceptAll`), with the same notes."""

    def __init__(self, side: Side, srv: socket.socket) -> None:
        self.side = side
        self.srv = srv
        self.conns: list[socket.socket] = []

    def run(self, until: threading.Event | None = None) -> None:
        side, srv = self.side, self.srv
        srv.setblocking(False)
        while not side.sides.stopping.is_set() and (until is None or not until.is_set()):
            ready, _w, _x = select.select([srv, *self.conns], [], [], 0.05)
            for sock in ready:
                if sock is srv:
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        conn, addr = srv.accept()
                        conn.setblocking(False)
                        self.conns.append(conn)
                        side.sides.sockets.append(conn)
                        side.note(f"server app: accept() returns a connection from port "
                                  f"{addr[1]}", fact="accepted", host="server",
                                  conn=_name(conn), key="app.accept", port=addr[1])
                    continue
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.conns.remove(sock)
                    continue
                port = sock.getpeername()[1]
                side.note(f"server app: read {data!r} (port {port})", fact="app-recv",
                          host="server", conn=_name(sock), data=data.decode("latin-1"),
                          key="app.read-bytes", shown=repr(data), port=port)
                side.signal("read")


def _settled_after(t: float) -> Callable[[Progress], bool]:
    """Settled once the run is ``t`` s old and every connection is CLOSED or in TIME-WAIT."""
    def check(p: Progress) -> bool:
        return p.t >= t and all(s in ("CLOSED", "TIME-WAIT") for s in p.states.values())
    return check


def _marked(name: str) -> Callable[[Progress], bool]:
    """Settled once a program signalled ``name`` (the programs hold their connections
    open until the run ends: what they would do after is not part of the lesson)."""
    def check(p: Progress) -> bool:
        return name in p.marks
    return check


# --------------------------------------------------------------------------- opening


def _handshake(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    def server(side: Side) -> None:
        srv = _listener(side, 80)
        side.note("server: socket(), bind(80), listen()", key="app.listen", port=80)
        side.signal("listening")
        conn, _addr = srv.accept()
        data = side.recv_exactly(conn, len(REQUEST))
        side.note("server app: read the request", fact="app-recv", host="server",
                  data=data.decode("latin-1"), key="handshake.read")
        side.sleep(0.2)
        side.signal("done")
        side.wait("end")

    def client(side: Side) -> None:
        side.wait("listening")
        cli = side.socket()
        cli.setblocking(False)
        cli.connect_ex((SERVER_ADDR, 80))
        try:
            cli.send(REQUEST)
            queued = True
        except BlockingIOError:
            queued = False
        if queued:
            side.note("client: connect() and send() at once; the request waits in SYN-SENT",
                      key="handshake.connect-send")
        else:
            side.note("client: connect(), then send() at once: Linux refuses it in SYN-SENT "
                      "(EAGAIN); the request goes when the connection is established",
                      key="onlinux.send-eagain")
            err = _wait_connected(side, cli, side.sides.limit)
            if err:
                raise OSError(err, "connect")
            cli.setblocking(True)
            cli.sendall(REQUEST)
        side.wait("end")

    return Lesson("handshake", {"server": server, "client": client}, main=(),
                  settled=_marked("done"))


def _old_duplicate_syn(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    old_data = b"PAY 100 TO MALLORY"
    new_data = b"GET /balance"
    iss: list[int] = []

    def first_syn(seen: Seen) -> bool:
        """The client's new SYN (its ISN is remembered for the old one's)."""
        if seen.src == "client" and ("syn", "client") in seen.roles:
            iss.append(seen.seg.seq)
            return True
        return False

    hold = Rule("delay", first_syn, "new SYN held up", copies=1, seconds=0.3)

    def server(side: Side) -> None:
        srv = _listener(side, 80)
        side.signal("listening")
        AcceptAll(side, srv).run()

    def client(side: Side) -> None:
        side.wait("listening")
        cli = side.socket()
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        cli.bind(("0.0.0.0", 40000))
        cli.setblocking(False)
        cli.connect_ex((SERVER_ADDR, 80))
        for _ in range(200):  # the wire sees the SYN within microseconds
            if iss:
                break
            side.sleep(0.005)
        if not iss:
            raise OSError("the client's SYN never reached the wire")
        old_isn = (iss[0] - 100_000) & 0xFFFFFFFF
        old = TcpSegment(40000, 80, old_isn, 0, SYN, 65535, 0, (Mss(1460),), old_data)
        side.note("an old SYN of an earlier attempt (same port, older ISN, with data) "
                  "is still in the network", fact="old-syn", isn=old_isn, key="ods.old-syn")
        side.inject("server", emit_ip_tcp(CLIENT_ADDR, SERVER_ADDR, old))
        err = _wait_connected(side, cli, side.sides.limit)
        if err:
            raise OSError(err, "connect")
        cli.setblocking(True)
        cli.sendall(new_data)
        side.wait("read")
        side.sleep(0.5)
        side.signal("done")
        side.wait("end")

    return Lesson("old-duplicate-syn", {"server": server, "client": client},
                  rules=[hold], main=(), settled=_marked("done"))


def _syn_retransmit(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    # A congested path holds the client's first two SYNs for 2.5 s.
    held = Rule("delay", lambda s: s.src == "client" and ("syn", "client") in s.roles,
                "SYN held up", copies=2, seconds=2.5)

    def server(side: Side) -> None:
        srv = _listener(side, 80)
        side.signal("listening")
        AcceptAll(side, srv).run()

    def client(side: Side) -> None:
        side.wait("listening")
        cli = side.socket(timeout=1.5)
        side.note("client: connect() with a 1.5 s timeout", key="app.connect-timeout",
                  timeout=1.5)
        try:
            cli.connect((SERVER_ADDR, 80))
        except TimeoutError:
            side.note("client: connect() timed out; close() and try again from a new socket",
                      fact="connect", host="client", result="timeout", key="synr.timeout")
            cli.close()
        cli2 = side.socket()
        cli2.connect((SERVER_ADDR, 80))
        side.note("client: second attempt connected", fact="connect", host="client",
                  result="ok", key="synr.second")
        side.sleep(4.0)
        side.signal("done")
        side.wait("end")

    return Lesson("syn-retransmit", {"server": server, "client": client}, rules=[held],
                  main=(), settled=_marked("done"))


BACKLOG = 8
ATTACKERS = [f"198.51.100.{10 + i}" for i in range(BACKLOG * 2)]


def _syn_flood(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    def server(side: Side) -> None:
        srv = _listener(side, 80, backlog=BACKLOG)
        side.signal("listening")
        AcceptAll(side, srv).run()

    def client(side: Side) -> None:
        side.wait("listening")
        side.note(f"attacker: {BACKLOG * 2} SYNs from spoofed addresses that will never "
                  "answer", key="flood.attack", n=BACKLOG * 2)
        for i, spoof in enumerate(ATTACKERS):
            seg = TcpSegment(20000 + i, 80, (0x1000 * (i + 1)) & 0xFFFFFFFF, 0, SYN, 65535,
                             0, (Mss(1460),))
            side.inject("server", emit_ip_tcp(spoof, SERVER_ADDR, seg), src="attacker")
        side.sleep(0.5)
        cli = side.socket(timeout=10.0)
        side.note("client: connect() with a 10 s timeout", key="app.connect-timeout",
                  timeout=10)
        try:
            cli.connect((SERVER_ADDR, 80))
        except (TimeoutError, OSError):
            side.note("client: connect() timed out (ETIMEDOUT)", fact="connect",
                      host="client", result="timeout", key="flood.timeout")
            side.signal("done")
            return
        side.note("client: connected", fact="connect", host="client", result="ok",
                  key="app.connected")
        cli.sendall(REQUEST)
        side.wait("read", 5.0)
        side.signal("done")
        side.wait("end")

    return Lesson("syn-flood", {"server": server, "client": client}, main=(),
                  settled=_marked("done"), others=dict.fromkeys(ATTACKERS, "attacker"),
                  routes={"server": ["198.51.100.0/24"]})


def _simultaneous_open(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    # Both SYNs must leave before either arrives (the one-way delay is 50 ms), or the
    # later end's port has no socket yet and answers RST. Two threads woken together can
    # be further apart than that on a busy machine, so A's thread makes both connect()
    # calls, microseconds apart (non-blocking); B's socket is a kernel socket of B's
    # namespace whichever thread calls it.
    b_sock: list[socket.socket] = []

    def program_a(side: Side) -> None:
        sock = side.socket()
        sock.bind(("0.0.0.0", 5000))
        sock.setblocking(False)
        side.wait("bound-B")
        side.note("A (port 5000) and B (port 6000) both call connect() to each other, no "
                  "listener", key="simopen.both", pa=5000, pb=6000)
        sock.connect_ex((SERVER_ADDR, 6000))
        b_sock[0].connect_ex((CLIENT_ADDR, 5000))
        side.signal("connecting")
        _established(side, sock)

    def program_b(side: Side) -> None:
        sock = side.socket()
        sock.bind(("0.0.0.0", 6000))
        sock.setblocking(False)
        b_sock.append(sock)
        side.signal("bound-B")
        side.wait("connecting")
        _established(side, sock)

    def _established(side: Side, sock: socket.socket) -> None:
        err = _wait_connected(side, sock, 5.0)
        if err:
            raise OSError(err, "connect")
        side.sleep(0.2)
        side.signal(f"open-{side.name}")
        side.wait("end")

    def both_established(p: Progress) -> bool:
        return {"open-A", "open-B"} <= p.marks

    return Lesson("simultaneous-open", {"B": program_b, "A": program_a},
                  ends=(("A", CLIENT_ADDR), ("B", SERVER_ADDR)), main=(),
                  settled=both_established)


# --------------------------------------------------------------------------- closing


def _connected_pair(client_then: Callable[[Side, socket.socket], None],
                    server_then: Callable[[Side, socket.socket], None],
                    name: str, **kw: object) -> Lesson:
    """Client (port 40000) and server (port 80) connected, request and response done;
    then each end's own story."""
    def server(side: Side) -> None:
        srv = _listener(side, 80)
        side.signal("listening")
        conn = _serve_one(side, srv, "answered")
        server_then(side, conn)
        side.wait("end")  # the listener stays open, as in the simulator

    def client(side: Side) -> None:
        side.wait("listening")
        cli = side.socket()
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        cli.bind(("0.0.0.0", 40000))
        cli.connect((SERVER_ADDR, 80))
        _exchange(side, cli, "answered")
        client_then(side, cli)

    return Lesson(name, {"server": server, "client": client}, main=("client",),
                  **kw)  # type: ignore[arg-type]


def _client_closing(text: str, key: str) -> Callable[[Side, socket.socket], None]:
    """The client's part of a closing lesson: note ``text``, then close()."""
    def client(side: Side, cli: socket.socket) -> None:
        side.note(text, key=key)
        cli.close()

    return client


def _server_closing_at_eof(after: float, text: str, key: str, **values: object
                           ) -> Callable[[Side, socket.socket], None]:
    """The server's part: read to end of stream, ``after`` seconds later note ``text``
    (its ``key`` and ``values`` for the translations) and close()."""
    def server(side: Side, conn: socket.socket) -> None:
        if conn.recv(4096) != b"":
            raise OSError("expected end of stream")
        if after:
            side.sleep(after)
        side.note(text, key=key, **values)
        conn.close()

    return server


def _close(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    return _connected_pair(
        _client_closing("client: close() - the client closes first", "app.client-closes-first"),
        _server_closing_at_eof(0.5, "server: recv() returned b'' (end of stream); half a "
                               "second later, close()", "close.server", d=0.5),
        "close")


CHUNKS = [b"part 1 of the answer, sent after the client's FIN\n",
          b"part 2: the server's direction is still open\n",
          b"part 3: now the server is done\n"]


def _half_close(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    def server(side: Side) -> None:
        srv = _listener(side, 80)
        side.signal("listening")
        conn, _addr = srv.accept()
        side.signal("accepted")
        conn.settimeout(side.sides.limit)
        got = side.recv_all(conn)
        side.note("server: read the whole request up to end of stream; it keeps sending",
                  fact="app-recv", host="server", data=got.decode("latin-1"),
                  key="half.read")
        for part in CHUNKS:
            side.sleep(0.3)
            conn.sendall(part)
        side.sleep(0.3)
        side.note("server: done: close()", key="half.done")
        conn.close()
        side.wait("end")

    def client(side: Side) -> None:
        side.wait("listening")
        cli = side.socket()
        cli.connect((SERVER_ADDR, 80))
        side.wait("accepted")
        cli.sendall(b"SUM 1 2 3\n")
        side.note("client: send the request, then shutdown(SHUT_WR): 'I have nothing more "
                  "to send'", key="half.shutdown")
        cli.shutdown(socket.SHUT_WR)
        answer = side.recv_all(cli)
        side.note(f"client: read {len(answer)} bytes after its own FIN, then end of stream",
                  fact="app-recv", host="client", data=answer.decode("latin-1"),
                  key="half.client-read", n=len(answer))
        cli.close()

    return Lesson("half-close", {"server": server, "client": client}, main=("client",))


def _close_combined(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    return _connected_pair(
        _client_closing("client: close()", "app.client-close"),
        _server_closing_at_eof(0.0, "server: end of stream, close() at once (within the 40 "
                               "ms delayed-ACK time)", "cc.server", d=40),
        "close-combined")


def _simultaneous_close(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    # "At the same moment": both FINs must leave before either arrives (within the 50 ms
    # one-way delay). Two threads woken together can be further apart than that on a
    # busy machine, so one thread makes both calls, microseconds apart: the server's
    # socket is a kernel socket of the server's namespace whichever thread closes it.
    server_conn: list[socket.socket] = []
    ready = threading.Event()

    def client(side: Side, cli: socket.socket) -> None:
        side.sleep(0.5)
        if not ready.wait(side.sides.limit):
            return
        side.note("client and server call close() at the same moment", key="simclose.both")
        cli.close()
        server_conn[0].close()

    def server(side: Side, conn: socket.socket) -> None:
        server_conn.append(conn)
        ready.set()

    return _connected_pair(client, server, "simultaneous-close")


def _lost_final_ack(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    # The client's ACK of the server's FIN (the life's last segment) is lost.
    last_ack = parse("drop", "last-ack")
    lose = Rule("drop", lambda seen: matches(last_ack, seen.roles), "the last ACK is lost")
    return _connected_pair(
        _client_closing("client: close()", "app.client-close"),
        _server_closing_at_eof(0.2, "server: close(); the client's ACK of this FIN will be "
                               "lost", "lfa.server-close"),
        "lost-final-ack", rules=[lose])


# --------------------------------------------------------------------------- TIME-WAIT

FIRST_PART = b"old answer, first 300 bytes: " + b"." * 271
STALE = b"STALE BYTES OF THE OLD CONNECTION!"  # relative SEQ=301 of the old connection


def _rst_in_time_wait(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    stale_arrival = 5.0
    server_isn: list[int] = []

    def stale(seen: Seen) -> bool:
        """The server's data segment at relative SEQ=301 (its first copy)."""
        seg = seen.seg
        if seen.src == "server" and seg.syn:
            server_isn[:] = [seg.seq]
        return bool(server_isn and seen.src == "server" and seg.payload
                    and seg.seq == (server_isn[0] + 1 + len(FIRST_PART)) & 0xFFFFFFFF)

    hold = Rule("delay", stale, "SEQ=301 held up in the network", copies=1, seconds=1.0)

    def server(side: Side) -> None:
        srv = _listener(side, 80)
        side.signal("listening")
        conn, _addr = srv.accept()
        side.signal("accepted")
        conn.settimeout(side.sides.limit)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        side.recv_exactly(conn, 8)
        conn.sendall(FIRST_PART)
        side.sleep(0.01)  # FIRST_PART leaves on its own
        elapsed = (side.now_ns() - side.sides.t0_ns) / 1e9
        hold.seconds = max(stale_arrival - elapsed - DELAY, 0.1)
        side.note("server: the second data segment (relative SEQ=301) is held up in the "
                  "network", fact="stale", seq=(server_isn[0] + 1 + len(FIRST_PART))
                  & 0xFFFFFFFF if server_isn else 0, key="stale.held")
        conn.sendall(STALE)
        if conn.recv(100) != b"":
            raise OSError("expected end of stream")
        conn.close()
        side.wait("end")

    def client(side: Side) -> None:
        side.wait("listening")
        cli = side.socket()
        cli.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        cli.bind(("0.0.0.0", 40000))
        cli.connect((SERVER_ADDR, 80))
        side.wait("accepted")
        cli.sendall(b"GET /old")
        side.recv_exactly(cli, len(FIRST_PART) + len(STALE))
        side.note("client: got all bytes (SEQ=301 was retransmitted); the client closes first",
                  key="stale.got-all")
        cli.close()
        left = stale_arrival - (side.now_ns() - side.sides.t0_ns) / 1e9
        side.sleep(max(left, 0.0))
        side.note("the held-up SEQ=301 segment of the old connection arrives at the client "
                  "now", key="stale.arrives")

    return Lesson("rst-in-time-wait", {"server": server, "client": client}, rules=[hold],
                  settled=_settled_after(stale_arrival + 0.5), limit=30.0, main=("client",))


def _port_reuse(sw: Switches, sysctls: tuple[str, ...]) -> Lesson:
    old_reuse = sw.reuseaddr == "both"
    new_reuse = sw.reuseaddr in ("both", "new-only")

    def try_bind(side: Side, sock: socket.socket, label: str, who: str) -> bool:
        try:
            sock.bind(("0.0.0.0", 8080))
        except OSError as exc:
            side.note(f"{label}: bind(8080) fails: EADDRINUSE", fact="bind", host="server",
                      label=label, reuse=bool(sock.getsockopt(socket.SOL_SOCKET,
                                                              socket.SO_REUSEADDR)),
                      result=errname(exc), why=exc.strerror or str(exc),
                      key="reuse.bind-fails", who=who, port=8080)
            return False
        side.note(f"{label}: bind(8080) ok", fact="bind", host="server", label=label,
                  reuse=bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)),
                  result="ok", why="", key="reuse.bind-ok", who=who, port=8080)
        return True

    def server(side: Side) -> None:
        srv = side.socket()
        if old_reuse:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        side.note(f"server: socket(), SO_REUSEADDR={int(old_reuse)}, bind(8080), listen()",
                  key="reuse.listen", flag=int(old_reuse), port=8080)
        srv.bind(("0.0.0.0", 8080))
        srv.listen()
        side.signal("listening")
        conn, _addr = srv.accept()
        side.signal("accepted")
        conn.settimeout(side.sides.limit)
        side.recv_exactly(conn, len(REQUEST))
        conn.sendall(RESPONSE)
        side.wait("got")
        probe = side.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try_bind(side, probe, "second server while the first listens", "live")
        probe.close()
        side.note("server: stopped with Ctrl+C: the kernel closes its sockets, the server "
                  "first", key="reuse.stop")
        conn.close()
        srv.close()
        side.signal("stopped")
        side.wait("client-closed")
        side.sleep(1.0)
        restart = side.socket()
        if new_reuse:
            restart.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        side.note(f"server: restarted at once, SO_REUSEADDR={int(new_reuse)}",
                  key="reuse.restart", flag=int(new_reuse))
        if not try_bind(side, restart, "restart", "restart"):
            side.note("Linux would let bind() succeed when TIME-WAIT ends, 60 s after it "
                      "began; the run does not wait for it", key="onlinux.no-wait-tw")

    def client(side: Side) -> None:
        side.wait("listening")
        cli = side.socket()
        cli.connect((SERVER_ADDR, 8080))
        side.wait("accepted")
        cli.sendall(REQUEST)
        side.recv_exactly(cli, len(RESPONSE))
        side.signal("got")
        side.wait("stopped")
        if cli.recv(100) != b"":
            raise OSError("expected end of stream")
        cli.close()
        side.signal("client-closed")

    return Lesson("port-reuse", {"server": server, "client": client})


# --------------------------------------------------------------------------- the table

#: scenarios a kernel cannot tell, and why
NOT_ON_LINUX: dict[str, str] = {
    "stale-segment": "it needs chosen ISNs (the new connection's exactly 300 above the old "
                     "one's); Linux picks each ISN from a clock and a keyed hash, and a "
                     "connect() to a 4-tuple in TIME-WAIT fails with EADDRNOTAVAIL for its "
                     "fixed 60 s",
    "server-close-storm": "it lasts minutes of real time on Linux (20 requests 2 s apart, "
                          "TIME-WAIT counted for 120 s); tcplab lab closestorm is the real "
                          "thing on kernel sockets",
}

LessonFn = Callable[[Switches, tuple[str, ...]], Lesson]
LESSONS: dict[str, LessonFn] = {
    "handshake": _handshake,
    "old-duplicate-syn": _old_duplicate_syn,
    "isn-sync": _handshake,
    "syn-retransmit": _syn_retransmit,
    "syn-flood": _syn_flood,
    "simultaneous-open": _simultaneous_open,
    "close": _close,
    "half-close": _half_close,
    "close-combined": _close_combined,
    "simultaneous-close": _simultaneous_close,
    "lost-final-ack": _lost_final_ack,
    "rst-in-time-wait": _rst_in_time_wait,
    "port-reuse": _port_reuse,
}

#: switches a kernel cannot take, and why (the others become sysctls or program choices)
_NO_SWITCH = {
    "two_way_handshake": "--two-way-handshake changes the TCP state machine; a kernel's "
                         "cannot be changed",
    "four_segment": "--four-segment needs a server that is a script, not a kernel",
    "time_wait": "Linux's TIME-WAIT is a fixed 60 s (TCP_TIMEWAIT_LEN), not a setting",
    "variant": "--variant: a Linux lesson tells the scenario's main case",
}


def linux_sysctls(sw: Switches) -> tuple[str, ...]:
    """The sysctls a scenario's switches become on Linux."""
    out: list[str] = []
    if sw.syn_cookies:
        out.append("net.ipv4.tcp_syncookies=1")
    if sw.rfc1337 is False:
        out.append("net.ipv4.tcp_rfc1337=0")
    return tuple(out)


def lesson_for(name: str, sw: Switches, sysctls: tuple[str, ...] = ()) -> Lesson:
    """The Linux lesson of catalogue scenario ``name`` with switches ``sw``."""
    if name in NOT_ON_LINUX:
        raise LessonError(f"scenario {name} cannot run on Linux: {NOT_ON_LINUX[name]}")
    fn = LESSONS.get(name)
    if fn is None:
        raise LessonError(f"scenario {name} has no Linux lesson (yet); these do: "
                          f"{', '.join(LESSONS)}")
    default = Switches()
    for field, why in _NO_SWITCH.items():
        if getattr(sw, field) != getattr(default, field):
            raise LessonError(f"{why}: it cannot be used with --on linux")
    return fn(sw, sysctls)
