"""``tcplab demo``: one whole connection life in the simulator.

Three-way handshake, a small HTTP request and response, the four-way close,
TIME-WAIT until CLOSED, on a simulated network with a one-way delay (50 ms
by default) and a virtual clock (so TIME-WAIT's 2MSL take no time).  The
notes it writes into the trace carry a catalogue ``key`` (``note.demo.*``),
so every picture can tell them in English or Chinese.
"""

from __future__ import annotations

from tcplab.engine.config import TcpConfig
from tcplab.sim import SimSocket, pair
from tcplab.sim.network import Network

REQUEST = b"GET / HTTP/1.1\r\nHost: 192.0.2.2\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, TCP!\r\n"


def run_demo(seed: int = 1, delay: float = 0.05, msl: float = 30.0) -> Network:
    """Run the demo connection and return the network (its trace holds everything)."""
    cfg = TcpConfig(msl=msl)
    net, client, server = pair(seed, delay=delay, client_config=cfg,
                               server_config=TcpConfig(msl=msl), msl=msl)
    tr = net.trace
    srv = SimSocket(net, server)
    srv.bind(("0.0.0.0", 80))
    srv.listen()
    tr.note(net.now, "server: socket(), bind(80), listen()", key="app.listen", port=80)
    cli = SimSocket(net, client)
    tr.note(net.now, "client: connect(192.0.2.2:80)", key="demo.connect", to="192.0.2.2:80")
    cli.connect(("192.0.2.2", 80))
    conn, _addr = srv.accept()
    tr.note(net.now, "client: send an HTTP request", key="demo.request")
    cli.sendall(REQUEST)
    got = b""
    while not got.endswith(b"\r\n\r\n"):
        got += conn.recv(4096)
    tr.note(net.now, "server: request received; send the response", key="demo.respond")
    conn.sendall(RESPONSE)
    body = b""
    while len(body) < len(RESPONSE):
        body += cli.recv(4096)
    tr.note(net.now, "client: response received; close(): the client closes first",
            key="demo.close")
    cli.close()
    assert conn.recv(4096) == b""  # the server's recv() returns b"": end of stream
    net.run_for(0.2)  # the server's application takes a moment before it closes
    tr.note(net.now, "server: recv() returned b'' (end of stream); close()",
            key="demo.server-close", d=0.2)
    conn.close()
    net.run()
    srv.close()
    net.run()
    return net
