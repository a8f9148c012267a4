"""The kernel's end of a bulk transfer: ``python -m tcplab.tun.peer`` run inside a namespace.

``recv --listen ADDR:PORT`` accepts one connection, reads until EOF and prints one
JSON line ``{"bytes", "seconds", "sha256"}`` (seconds from accept to EOF; the bytes are
kept and hashed after the clock stops, so the figure is TCP's, not SHA-256's).
``send --connect ADDR:PORT --bytes N`` connects, sends N bytes of
:func:`payload` and closes, printing the same line (seconds from connect to the
end of ``close``).  ``pair --bytes N`` runs both over loopback (two processes:
the kernel-to-kernel baseline).  Only the standard library is used, and the
kernel's TCP does all the work, so this measures tcplab, not this helper.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import subprocess
import sys
import time

__all__ = ["payload", "payload_sha256"]

_CHUNK = 1 << 20


def payload(n: int, seed: int = 6) -> bytes:
    """``n`` pseudo-random bytes, the same on both ends."""
    return random.Random(seed).randbytes(n)


def payload_sha256(n: int, seed: int = 6) -> str:
    return hashlib.sha256(payload(n, seed)).hexdigest()


def _addr(text: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``[ADDR]:PORT`` or ``IPV6ADDR:PORT`` (the last colon ends the address)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _report(nbytes: int, seconds: float, digest: str) -> None:
    print(json.dumps({"bytes": nbytes, "seconds": seconds, "sha256": digest}), flush=True)


def recv(listen: tuple[str, int], timeout: float, hash_data: bool) -> None:
    srv = socket.socket(socket.AF_INET6 if ":" in listen[0] else socket.AF_INET,
                        socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(listen)
    srv.listen(1)
    print("listening", flush=True)
    srv.settimeout(timeout)
    conn, _ = srv.accept()
    conn.settimeout(timeout)
    start = time.perf_counter()
    chunks: list[bytes] = []
    total = 0
    while True:
        data = conn.recv(_CHUNK)
        if not data:
            break
        total += len(data)
        if hash_data:
            chunks.append(data)  # hashed after the clock stops: the time is TCP's alone
    elapsed = time.perf_counter() - start
    conn.close()
    srv.close()
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    _report(total, elapsed, h.hexdigest() if hash_data else "")


def send(connect: tuple[str, int], nbytes: int, timeout: float) -> None:
    data = payload(nbytes)
    start = time.perf_counter()
    sock = socket.create_connection(connect, timeout=timeout)
    view = memoryview(data)
    for off in range(0, nbytes, _CHUNK):
        sock.sendall(view[off:off + _CHUNK])
    sock.shutdown(socket.SHUT_WR)
    sock.recv(1)  # wait for the other end's FIN: every byte arrived
    elapsed = time.perf_counter() - start
    sock.close()
    _report(nbytes, elapsed, hashlib.sha256(data).hexdigest())


def pair(nbytes: int, port: int, timeout: float, hash_data: bool = False) -> None:
    """Kernel to kernel over loopback, sender and receiver in two processes (the
    receiver hashes what it gets with ``hash_data``); the sender's line, then the
    receiver's."""
    rx = subprocess.Popen([sys.executable, "-m", "tcplab.tun.peer", "recv", "--listen",
                           f"127.0.0.1:{port}", *([] if hash_data else ["--no-hash"]),
                           "--timeout", str(timeout)],
                          stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout is not None
        rx.stdout.readline()  # "listening"
        send(("127.0.0.1", port), nbytes, timeout)
        print(rx.stdout.readline().strip(), flush=True)
        rx.wait(timeout)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tcplab.tun.peer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--listen", required=True)
    r.add_argument("--no-hash", action="store_true")
    s = sub.add_parser("send")
    s.add_argument("--connect", required=True)
    s.add_argument("--bytes", type=int, required=True)
    p = sub.add_parser("pair")
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--port", type=int, default=5999)
    p.add_argument("--hash", action="store_true", help="the receiver hashes (sha256)")
    for x in (r, s, p):
        x.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args(argv)
    if args.cmd == "recv":
        recv(_addr(args.listen), args.timeout, not args.no_hash)
    elif args.cmd == "send":
        send(_addr(args.connect), args.bytes, args.timeout)
    else:
        pair(args.bytes, args.port, args.timeout, args.hash)


if __name__ == "__main__":
    main()
