"""The socket-like API and its asyncio form, on the simulator: Python's exceptions, virtual time."""

from __future__ import annotations

import array
import asyncio
import errno
import socket
import struct

import pytest

from tcplab.api import transports as aio
from tcplab.sim import Network, SimSocket, SimulationStuck, pair
from tcplab.sim import listening as sim_listening
from tcplab.sim.eventloop import run_async


def listening(net: Network, host: str = "server", port: int = 80,
              reuse: bool = False) -> SimSocket:
    return sim_listening(net, host, port, reuse=reuse)


def test_blocking_connect_takes_one_round_trip_of_virtual_time() -> None:
    net, _c, _s = pair(seed=1, delay=0.05)
    listening(net)
    cli = SimSocket(net, "client")
    cli.connect(("192.0.2.2", 80))
    assert net.now == pytest.approx(0.10)
    assert cli.state == "ESTABLISHED"


def test_connect_to_a_closed_port_raises_connection_refused() -> None:
    net, _c, _s = pair(seed=1)
    cli = SimSocket(net, "client")
    with pytest.raises(ConnectionRefusedError):
        cli.connect(("192.0.2.2", 81))


def test_bind_to_a_listening_port_raises_eaddrinuse() -> None:
    net, _c, _s = pair(seed=1)
    listening(net, reuse=True)
    again = SimSocket(net, "server")
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with pytest.raises(OSError) as info:
        again.bind(("0.0.0.0", 80))
    assert info.value.errno == errno.EADDRINUSE


def test_linger_zero_close_resets_and_peer_gets_connection_reset() -> None:
    net, _c, _s = pair(seed=2)
    srv = listening(net)
    cli = SimSocket(net, "client")
    cli.connect(("192.0.2.2", 80))
    peer, _ = srv.accept()
    cli.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    cli.close()
    with pytest.raises(ConnectionResetError):
        peer.recv(10)
    assert [e["flags"] for e in net.trace.segments()][-1] == "R"


def test_recv_timeout_is_virtual_and_raises_timeout_error() -> None:
    net, _c, _s = pair(seed=3)
    srv = listening(net)
    cli = SimSocket(net, "client")
    cli.connect(("192.0.2.2", 80))
    srv.accept()
    cli.settimeout(5.0)
    start = net.now
    with pytest.raises(TimeoutError):
        cli.recv(10)
    assert net.now - start == pytest.approx(5.0)


def test_nonblocking_calls_raise_blocking_io_error() -> None:
    net, _c, _s = pair(seed=4)
    srv = listening(net)
    srv.setblocking(False)
    with pytest.raises(BlockingIOError):
        srv.accept()
    cli = SimSocket(net, "client")
    cli.setblocking(False)
    with pytest.raises(BlockingIOError):
        cli.connect(("192.0.2.2", 80))
    net.run_for(1)
    assert cli.state == "ESTABLISHED"
    with pytest.raises(BlockingIOError):
        cli.recv(10)


def test_send_after_shutdown_raises_broken_pipe_and_half_close_still_receives() -> None:
    net, _c, _s = pair(seed=5)
    srv = listening(net)
    cli = SimSocket(net, "client")
    cli.connect(("192.0.2.2", 80))
    peer, _ = srv.accept()
    cli.shutdown(socket.SHUT_WR)
    with pytest.raises(BrokenPipeError):
        cli.send(b"x")
    assert peer.recv(10) == b""  # the client's FIN
    peer.sendall(b"still talking")  # the server may still send (CLOSE-WAIT)
    assert cli.recv(100) == b"still talking"
    assert cli.state == "FIN-WAIT-2" and peer.state == "CLOSE-WAIT"


def test_waiting_for_what_never_happens_fails_instead_of_hanging() -> None:
    net, _c, _s = pair(seed=6)
    srv = listening(net)
    with pytest.raises(TimeoutError):
        srv.accept()  # nobody ever connects


def test_asyncio_streams_echo_in_virtual_time() -> None:
    net, c, s = pair(seed=7, delay=0.02)

    async def main() -> tuple[bytes, float]:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            line = await r.readline()
            w.write(b"echo: " + line)
            await w.drain()
            w.close()

        await aio.start_stream_server(s, handle, port=7, kick=net.flush)
        reader, writer = await aio.open_connection(c, "192.0.2.2", 7, kick=net.flush)
        writer.write(b"hello\n")
        data = await reader.read()
        writer.close()
        await asyncio.sleep(120)  # two minutes of virtual time
        return data, net.now

    data, now = run_async(net, main())
    assert data == b"echo: hello\n"
    assert now >= 120
    assert net.trace.states("server")[-2:] == ["TIME-WAIT", "CLOSED"]  # the server closed first
    assert net.trace.states("client")[-1] == "CLOSED"


def test_asyncio_connection_refused_and_idle_network_detected() -> None:
    net, c, _s = pair(seed=8)

    async def refused() -> None:
        await aio.open_connection(c, "192.0.2.2", 9, kick=net.flush)

    with pytest.raises(ConnectionRefusedError):
        run_async(net, refused())

    async def forever() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(SimulationStuck):
        run_async(net, forever())


def test_asyncio_protocol_server_gets_data_and_eof() -> None:
    net, c, s = pair(seed=9)
    seen: list[object] = []

    class Collect(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            seen.append(("peer", transport.get_extra_info("peername")))
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            seen.append(data)

        def eof_received(self) -> bool | None:
            seen.append("eof")
            return None

        def connection_lost(self, exc: Exception | None) -> None:
            seen.append(("lost", exc))

    async def main() -> None:
        await aio.start_server(s, Collect, port=25, kick=net.flush)
        _r, w = await aio.open_connection(c, "192.0.2.2", 25, kick=net.flush)
        w.write(b"HELO\r\n")
        w.close()
        await asyncio.sleep(1)

    run_async(net, main())
    assert seen[1:] == [b"HELO\r\n", "eof", ("lost", None)]


def test_asyncio_a_write_beyond_the_send_buffer_waits_in_the_transport_and_arrives_whole(
        ) -> None:
    net, c, s = pair(seed=11)
    data = bytes(range(256)) * 6144  # 1.5 MiB, six times the engine's 256 KiB send buffer
    tail = array.array("H", [1, 2, 3])  # items of two bytes: six bytes on the wire
    got = bytearray()
    seen: list[str] = []

    class Sink(asyncio.Protocol):
        def data_received(self, chunk: bytes) -> None:
            got.extend(chunk)

        def eof_received(self) -> bool | None:
            seen.append("eof")
            return None

    class Source(asyncio.Protocol):
        def pause_writing(self) -> None:
            seen.append("pause")

        def resume_writing(self) -> None:
            seen.append("resume")

    async def main() -> None:
        await aio.start_server(s, Sink, port=9, kick=net.flush)
        t, _ = await aio.create_connection(c, Source, "192.0.2.2", 9, kick=net.flush)
        assert isinstance(t, aio.EngineTransport)
        conn = t.connection
        t.write(memoryview(data))
        # The engine took what its buffer holds at once; the rest waits in the
        # transport, above the high-water mark (1 MiB): the protocol is paused.
        assert conn.unsent_or_unacked == conn.snd_buf == 256 * 1024
        assert t.get_write_buffer_size() == len(data) and seen == ["pause"]
        t.write(memoryview(tail))
        t.close()
        await asyncio.sleep(30)

    run_async(net, main())
    assert bytes(got) == data + tail.tobytes()
    assert seen == ["pause", "resume", "eof"]
