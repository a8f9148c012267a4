"""Bulk transfer on tcplab's side of a TUN device (for the tests and the benchmark).

Both directions use the asyncio layer (:mod:`tcplab.aio`), as any application
would; the kernel's end is :mod:`tcplab.tun.peer` run in the namespace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from tcplab.api import transports as aio
from tcplab.tun.backend import TunBackend

__all__ = ["BulkResult", "kernel_to_tcplab", "tcplab_to_kernel"]

_WRITE_CHUNK = 256 * 1024


@dataclass
class BulkResult:
    nbytes: int
    seconds: float
    sha256: str
    peer: dict[str, Any]

    @property
    def mbit_s(self) -> float:
        return self.nbytes * 8 / self.seconds / 1e6 if self.seconds > 0 else 0.0


class _Sink(asyncio.Protocol):
    """Receives until EOF; keeps the bytes (when hashing) for :meth:`digest`, so the
    hash costs nothing while the transfer is timed."""

    def __init__(self, hash_data: bool) -> None:
        self.chunks: list[bytes] | None = [] if hash_data else None
        self.nbytes = 0
        self.start = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.start = time.perf_counter()

    def data_received(self, data: bytes) -> None:
        self.nbytes += len(data)
        if self.chunks is not None:
            self.chunks.append(data)

    def digest(self) -> str:
        if self.chunks is None:
            return ""
        h = hashlib.sha256()
        for c in self.chunks:
            h.update(c)
        self.chunks = None
        return h.hexdigest()

    def eof_received(self) -> bool | None:
        if not self.done.done():
            self.done.set_result(None)
        return None  # the transport closes: our FIN answers the sender's

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)


class _Source(asyncio.Protocol):
    def __init__(self) -> None:
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.can_write.set()
        if not self.closed.done():
            self.closed.set_result(None)


async def _peer_line(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise RuntimeError("the kernel-side peer exited without a result")
    result: dict[str, Any] = json.loads(line)
    return result


async def _start_peer(backend: TunBackend, args: list[str]) -> asyncio.subprocess.Process:
    argv = backend.ns.exec_argv([sys.executable, "-m", "tcplab.tun.peer", *args])
    return await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)


async def _finish(proc: asyncio.subprocess.Process, timeout: float) -> None:
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def kernel_to_tcplab(backend: TunBackend, nbytes: int, port: int = 5001,
                           timeout: float = 60.0, hash_data: bool = True) -> BulkResult:
    """A kernel socket in the namespace sends ``nbytes`` to tcplab, which listens."""
    sinks: list[_Sink] = []

    def factory() -> asyncio.Protocol:
        sink = _Sink(hash_data)
        sinks.append(sink)
        return sink

    server = await aio.start_server(backend.host, factory, backend.addr, port=port,
                                    kick=backend.kick)
    proc = await _start_peer(backend, ["send", "--connect", f"{backend.addr}:{port}",
                                       "--bytes", str(nbytes), "--timeout", str(timeout)])
    try:
        peer = await _peer_line(proc, timeout)
        if not sinks:
            raise RuntimeError("no connection reached tcplab")
        sink = sinks[0]
        await asyncio.wait_for(sink.done, timeout)
        elapsed = peer["seconds"]
        return BulkResult(sink.nbytes, elapsed, sink.digest(), peer)
    finally:
        server.close()
        await _finish(proc, 5.0)


async def tcplab_to_kernel(backend: TunBackend, data: bytes, port: int = 5002,
                           timeout: float = 60.0, hash_data: bool = True) -> BulkResult:
    """tcplab connects to a kernel socket in the namespace and sends ``data``."""
    args = ["recv", "--listen", f"{backend.kernel_addr}:{port}", "--timeout", str(timeout)]
    if not hash_data:
        args.append("--no-hash")
    proc = await _start_peer(backend, args)
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), timeout)  # "listening"
        transport, proto = await asyncio.wait_for(aio.create_connection(
            backend.host, _Source, backend.kernel_addr, port, kick=backend.kick), timeout)
        assert isinstance(proto, _Source)
        view = memoryview(data)
        for off in range(0, len(data), _WRITE_CHUNK):
            if not proto.can_write.is_set():
                await asyncio.wait_for(proto.can_write.wait(), timeout)
            transport.write(view[off:off + _WRITE_CHUNK])
        transport.close()
        peer = await _peer_line(proc, timeout)
        await asyncio.wait_for(proto.closed, timeout)
        return BulkResult(len(data), peer["seconds"], peer["sha256"], peer)
    finally:
        await _finish(proc, 5.0)
