"""``tcplab demo``: one whole connection life in the simulator.

Three-way handshake, a small HTTP request and response, the four-way close,
TIME-WAIT until CLOSED, on a simulated network with a one-way delay (50 ms
by default) and a virtual clock (so TIME-WAIT's 2MSL take no time).  The
notes it writes into the trace carry a catalogue ``key`` (``note.demo.*``),
so every picture can tell them in English or Chinese.

The life can be disturbed (``faults``: ``--drop syn:all``, ``--delay fin=2``)
and given an exam's numbers (ISNs, round-trip time, MSL, byte counts).  Then
a step may never complete: the story says so (a note with the error, when it
happened and why) and goes on with what still makes sense, within a bounded
stretch of virtual time, so every run ends.
"""

from __future__ import annotations

import errno

from tcplab.api.sockets import IPPROTO_TCP, TCP_NODELAY, TcpSocket
from tcplab.engine.config import TcpConfig
from tcplab.engine.isn import ChosenIsn, IsnGenerator
from tcplab.faults import FaultSpec, install
from tcplab.sim import SimSocket
from tcplab.sim.network import LinkSpec, Network

REQUEST = b"GET / HTTP/1.1\r\nHost: 192.0.2.2\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, TCP!\r\n"
CLIENT, SERVER = "192.0.2.1", "192.0.2.2"
PATIENCE = 3600.0  #: how long (virtual seconds) a side waits for a step that never comes


def _payload(size: int | None, default: bytes, fill: bytes) -> bytes:
    if size is None:
        return default
    return (fill * (size // len(fill) + 1))[:size]


def _errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def run_demo(seed: int = 1, delay: float = 0.05, msl: float = 30.0, *,
             config: TcpConfig | None = None, faults: tuple[FaultSpec, ...] = (),
             isn: tuple[int | None, int | None] = (None, None),
             request: int | None = None, response: int | None = None,
             exam: bool = False, think: float | None = None) -> Network:
    """Run the demo connection and return the network (its trace holds everything).

    ``config``: the hosts' TCP (a profile with sysctls; ``msl`` is put in it);
    ``isn``: the client's and the server's ISN, when an exam gives them;
    ``request``/``response``: their sizes in bytes (default: a small HTTP exchange);
    ``exam``: the fastest life an exam counts with: the request leaves with the
    handshake's third segment, nothing waits for Nagle, and the server closes as
    soon as it reads the end of the stream;
    ``think``: how long the server's application takes to close after it reads the end
    of the stream (default 0.2 s, 0 in exam mode).
    """
    base = config if config is not None else TcpConfig()
    net = Network(seed, msl=msl)
    hosts = []
    for name, addr, chosen in (("client", CLIENT, isn[0]), ("server", SERVER, isn[1])):
        cfg = base.copy(msl=msl)
        source = None
        if chosen is not None:
            source = ChosenIsn([chosen], IsnGenerator.from_rng(net.host_rng(name)))
        hosts.append(net.add_host(name, addr, cfg, isn=source))
    client, server = hosts
    net.link(client, server, LinkSpec(delay=delay))
    if faults:
        install(net, list(faults))
    req = _payload(request, REQUEST, b"request ")
    resp = _payload(response, RESPONSE, b"response ")
    tr = net.trace

    srv = SimSocket(net, server)
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    tr.note(net.now, "server: socket(), bind(80), listen()", key="app.listen", port=80)
    cli = SimSocket(net, client)
    tr.note(net.now, "client: connect(192.0.2.2:80)", key="demo.connect", to="192.0.2.2:80")
    started = net.now
    if exam:
        # Queued before the handshake ends, the request rides on the third segment.
        for sock in (cli, srv):
            sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        cli.setblocking(False)
        try:
            cli.connect(("192.0.2.2", 80))
        except BlockingIOError:
            pass
        cli.setblocking(True)
        tr.note(net.now, "client: send an HTTP request", key="demo.request", n=len(req))
        assert cli.conn is not None
        cli.conn.send(req, net.now)
    try:
        if exam:
            net.run_until(lambda: (cli.conn is not None and cli.conn.state.synchronized)
                          or (cli.conn is not None and cli.conn.error is not None),
                          timeout=PATIENCE, what="connect")
            if cli.conn is not None and cli.conn.error is not None:
                raise ConnectionError(errno.ETIMEDOUT, "Connection timed out")
        else:
            cli.connect(("192.0.2.2", 80))
    except OSError as exc:
        _failed(net, "client", "connect", exc, started)
        net.settle(net.now + PATIENCE)
        return net
    cli.settimeout(PATIENCE)
    # The client sends as soon as connect() returns; it does not wait for the server's
    # accept() (if the handshake's ACK is lost, this data segment completes it).
    if not exam:
        tr.note(net.now, "client: send an HTTP request", key="demo.request", n=len(req))
    ok = exam or _send(net, cli, "client", req)
    srv.settimeout(PATIENCE)
    since = net.now
    try:
        conn, _addr = srv.accept()
    except OSError as exc:
        _failed(net, "server", "accept", exc, since)
        return net
    conn.settimeout(PATIENCE)
    got = _recv(net, conn, "server", len(req)) if ok else b""
    if len(got) == len(req):
        tr.note(net.now, "server: request received; send the response", key="demo.respond",
                n=len(resp))
        if _send(net, conn, "server", resp):
            _recv(net, cli, "client", len(resp))
    tr.note(net.now, "client: response received; close(): the client closes first",
            key="demo.close")
    cli.close()
    since = net.now
    try:
        rest = conn.recv(4096)  # the server's recv() returns b"": end of stream
        while rest:
            rest = conn.recv(4096)
    except OSError as exc:
        _failed(net, "server", "recv", exc, since)
    if think is None:
        think = 0.0 if exam else 0.2  # the server's application takes a moment to close
    net.run_for(think)
    tr.note(net.now, "server: recv() returned b'' (end of stream); close()",
            key="demo.server-close", d=think)
    conn.close()
    net.settle(net.now + PATIENCE)
    srv.close()
    net.settle(net.now + PATIENCE)
    return net


def _failed(net: Network, host: str, call: str, exc: OSError, since: float) -> None:
    """A call failed: record what, when, and after how long (the outcome reads it).
    A call that only ran out of the story's patience (no errno: nothing came) is not a
    failure of TCP; it is recorded as such."""
    if isinstance(exc, TimeoutError) and exc.errno is None:
        net.trace.note(net.now, f"{host}: {call}() still waiting after "
                                f"{net.now - since:g} s: nothing came",
                       key="demo.waited", fact="call-waited", host=host, label=call,
                       after=round(net.now - since, 6))
        return
    net.trace.note(net.now, f"{host}: {call}() failed: {exc.strerror or exc} "
                            f"after {net.now - since:g} s",
                   key="demo.failed", fact="call-failed", host=host, label=call,
                   result=_errname(exc), after=round(net.now - since, 6))


def _send(net: Network, sock: TcpSocket, host: str, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError as exc:
        _failed(net, host, "send", exc, net.now)
        return False
    return True


def _recv(net: Network, sock: TcpSocket, host: str, n: int) -> bytes:
    got = b""
    since = net.now
    try:
        while len(got) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError as exc:
        _failed(net, host, "recv", exc, since)
    return got
