"""``tcplab tun``: tcplab's TCP on a TUN device, talking to the Linux kernel's TCP.

``serve`` puts tcplab's stack (192.0.2.2 and 2001:db8::2) behind a TUN device in a
private namespace and listens; ``exec`` runs a command (curl, python, nc) inside that
namespace, where the kernel (192.0.2.1 and 2001:db8::1) talks to tcplab; ``connect``
makes tcplab the client of a kernel server (``python -m http.server``) started in a
fresh namespace, over IPv4 or (``-6``) IPv6.  Both sides' states end up in one trace:
tcplab's from the engine, the kernel's from its tracepoints or sock_diag.

``serve`` runs until Ctrl+C, so what it keeps is bounded: the trace is a ring of the
last ``--trace-limit`` events (``0``: no trace), and the server holds at most
``--max-connections`` connections (``--max-per-source`` per client address), each
closed after ``--keepalive-timeout`` without a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from tcplab.cli.common import emit_outputs, print_diagram, trace_options
from tcplab.cli.params import FiniteFloat, reject_unless
from tcplab.kernel.tracefs import close_all_live as close_all_instances
from tcplab.trace import Event, Trace, to_json_event
from tcplab.tun.backend import TunBackend
from tcplab.tun.netns import TunUnavailable, check_requirements, find_running, remove_all_live

_MAX_DIAGRAM_SEGMENTS = 400
#: events ``serve`` keeps by default: enough for the diagram it prints (400 segments
#: with their states and timers), or, when a file is asked for, a long stretch of it
#: (an event with its packet takes about 1-2 KB)
_SERVE_TRACE_DIAGRAM = 4_000
_SERVE_TRACE_OUTPUT = 200_000
T = TypeVar("T")


@click.group("tun")
def tun() -> None:
    """tcplab's TCP on a TUN device in a private namespace, against the kernel's TCP.

    Needs root (or CAP_NET_ADMIN), /dev/net/tun and the `ip` command.  The
    namespace (tcplab-PID-N) holds only the device: the kernel is 192.0.2.1 and
    2001:db8::1, tcplab's stack 192.0.2.2 and 2001:db8::2, and there is no route out.
    """


def _fail(exc: BaseException) -> click.ClickException:
    return click.ClickException(str(exc).splitlines()[0] if str(exc) else repr(exc))


def _display_events(events: list[Event], t0: float) -> list[Event]:
    """Times relative to the start; the kernel's packets drawn as the kernel's sends."""
    out: list[Event] = []
    for e in sorted(events, key=lambda e: e["t"]):
        d = dict(e)
        d["t"] = e["t"] - t0
        if isinstance(d.get("deadline"), float):
            d["deadline"] = d["deadline"] - t0
        out.append(d)
    return out


def _for_diagram(events: list[Event]) -> list[Event]:
    """The kernel's packets as the kernel's sends, for the pictures.

    The trace records them as ``event: "recv"`` with host "kernel" (the sender);
    the terminal diagram draws only sends, and the SVG/HTML model reads a recv's
    host as the receiver.  As sends of the "kernel" lifeline they are drawn as
    arrows from the kernel to tcplab in every picture.  The JSON keeps "recv".
    """
    out: list[Event] = []
    for e in events:
        if e["kind"] == "segment" and e.get("event") == "recv":
            e = dict(e, event="send")
        out.append(e)
    return out


def _report(backend: TunBackend, t0: float, meta: dict[str, Any], *, title: str,
            json_out: bool, lang: str, absolute: bool, width: int, svg: str | None,
            html: str | None, pcap: str | None) -> None:
    events = _display_events(backend.trace.events, t0)
    if backend.trace.discarded:
        meta = dict(meta, trace_discarded=backend.trace.discarded)
    if json_out:
        import json
        doc = {"schema": "tcplab-trace/1", "meta": meta,
               "events": [to_json_event(e) for e in events]}
        json.dump(doc, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        nseg = sum(1 for e in events if e["kind"] == "segment")
        if nseg <= _MAX_DIAGRAM_SEGMENTS:
            print_diagram(_for_diagram(events), lang=lang, relative=not absolute,
                          width=width, title=title)
        else:
            click.echo(f"{nseg} segments: too many to draw here; use --svg, --html or --pcap.")
    emit_outputs(_for_diagram(events), meta, svg=svg, html=html, pcap=pcap, title=title,
                 relative=not absolute)


def _exit_on_sigterm() -> None:
    """Before the loop runs: SIGTERM unwinds (finally blocks and atexit remove the namespace)."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


async def _until_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event,
                         timeout: float) -> T:
    """Run ``work`` until it ends, ``timeout`` passes (TimeoutError) or Ctrl+C
    (KeyboardInterrupt, once ``work`` has cleaned up after its cancellation)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if stopper in done:
        raise KeyboardInterrupt
    raise TimeoutError(f"gave up after {timeout:g} s")


def _install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    # Ctrl+C must work even when a shell started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _offload_notice(backend: TunBackend) -> None:
    if backend.offload_notice:
        click.echo(f"note: {backend.offload_notice}", err=True)


@tun.command("serve")
@click.option("--http", "use_http", is_flag=True,
              help="Serve HTTP/1.1 (tcplab's HTTP server) instead of echo.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on [default: 80 with --http, else 7 (echo)].")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="With --http: serve static files from this directory.")
@click.option("--mtu", type=click.IntRange(576, 65535), default=1500, show_default=True,
              help="MTU of the TUN device.")
@click.option("--no-offload", is_flag=True,
              help="Open the device without checksum and TSO offloads (one packet per "
                   "read and write, every checksum in Python).")
@click.option("--max-connections", type=click.IntRange(1, 100_000), default=512,
              show_default=True, help="With --http: connections at once; more get 503.")
@click.option("--max-per-source", type=click.IntRange(0, 100_000), default=128,
              show_default=True,
              help="Connections at once from one client address; more are reset (0: no "
                   "limit).")
@click.option("--keepalive-timeout", type=FiniteFloat(0.1, 3600), default=5.0,
              show_default=True,
              help="With --http: seconds a connection may stay without a request (also "
                   "right after its handshake).")
@click.option("--request-timeout", type=FiniteFloat(0.1, 3600), default=10.0,
              show_default=True, help="With --http: seconds a request may take to arrive.")
@click.option("--trace-limit", type=click.IntRange(0, 10_000_000), default=None,
              help=f"Events the trace keeps, the last ones (0: no trace) [default: "
                   f"{_SERVE_TRACE_DIAGRAM:,} for the diagram, {_SERVE_TRACE_OUTPUT:,} with "
                   f"--json/--svg/--html/--pcap].")
@trace_options
def serve(use_http: bool, port: int | None, root: Path | None, mtu: int, no_offload: bool,
          max_connections: int, max_per_source: int, keepalive_timeout: float,
          request_timeout: float, trace_limit: int | None, json_out: bool, lang: str,
          absolute: bool, width: int, svg: str | None, html: str | None,
          pcap: str | None) -> None:
    """tcplab listens behind a TUN device until Ctrl+C; try `tcplab tun exec -- curl ...`.

    On Ctrl+C the server closes its connections first, and the trace (both
    sides' segments and states) is printed or written as asked.
    """
    ctx = click.get_current_context()
    reject_unless(ctx, use_http, ["root", "max_connections", "keepalive_timeout",
                                  "request_timeout"],
                  "without --http (the echo server serves no files and has no HTTP limits)")
    reject_unless(ctx, not json_out, ["width"], "to --json (no diagram is printed)")
    outputs = json_out or bool(svg or html or pcap)
    if trace_limit == 0:
        reject_unless(ctx, False, ["json_out", "svg", "html", "pcap"],
                      "with --trace-limit 0 (no trace is kept)")
    limit = trace_limit if trace_limit is not None else (
        _SERVE_TRACE_OUTPUT if outputs else _SERVE_TRACE_DIAGRAM)
    port = port if port is not None else (80 if use_http else 7)
    try:
        check_requirements()
    except TunUnavailable as exc:
        raise _fail(exc) from None
    _exit_on_sigterm()
    totals: dict[str, int] = {}

    async def main() -> tuple[TunBackend, float]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        _install_signals(loop, stop)
        # packet bytes are kept for --pcap only (the diagram and JSON do not show them)
        trace = Trace(enabled=limit > 0, limit=limit or None, keep_raw=bool(pcap))
        backend = TunBackend(mtu=mtu, trace=trace, offload=not no_offload)
        t0 = loop.time()
        async with backend:
            _offload_notice(backend)
            from tcplab.api import transports as aio
            per_source = max_per_source or None
            if use_http:
                from tcplab.http.messages import Limits
                from tcplab.http.tun import start_http
                limits = Limits(max_connections=max_connections,
                                keepalive_timeout=keepalive_timeout,
                                request_timeout=request_timeout)
                server, state = await start_http(backend, port, root, limits, per_source)
            else:
                server = await aio.start_server(
                    backend.host, _Echo, backend.addrs, port=port, kick=backend.kick,
                    limits=aio.ServerLimits(max_per_source=per_source))
                state = None
            what = "HTTP" if use_http else "echo"
            hosts = [backend.url_host(a) for a in backend.addrs]
            urls = [f"http://{h}/" if port == 80 else f"http://{h}:{port}/" for h in hosts]
            try_cmd = (f"tcplab tun exec -- curl {urls[0]}" if use_http else
                       f"tcplab tun exec -- nc {backend.addr} {port}")
            click.echo(f"namespace {backend.netns}: tcplab {' and '.join(backend.addrs)} port "
                       f"{port} serves {what}; the kernel is "
                       f"{' and '.join(backend.kernel_addrs)}.", err=True)
            click.echo(f"Try: {try_cmd}   (Ctrl+C to stop)", err=True)
            click.echo(backend.netns)
            sys.stdout.flush()
            await stop.wait()
            server.close()
            if state is not None:
                state.close_all()
            else:
                server.close_clients()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(_all_closed(backend), 1.0)
            totals["accepted"] = (state.total_connections if state is not None
                                  else server.accepted)
            totals["refused"] = server.refused + (state.rejected_connections
                                                  if state is not None else 0)
        return backend, t0

    try:
        backend, t0 = asyncio.run(main())
    except TunUnavailable as exc:
        raise _fail(exc) from None
    finally:
        remove_all_live()
        close_all_instances()
    refused = (f", {totals['refused']} refused at a limit" if totals.get("refused") else "")
    click.echo(f"stopped after {totals.get('accepted', 0)} connection(s){refused}; "
               f"namespace {backend.netns} removed.", err=True)
    if limit == 0:
        return
    if backend.trace.discarded:
        click.echo(f"the trace kept the last {len(backend.trace)} events; "
                   f"{backend.trace.discarded} earlier ones were let go (--trace-limit).",
                   err=True)
    meta = {"command": "tun serve", "http": use_http, "port": port, "mtu": mtu,
            "netns": backend.netns, "offload": backend.vnet}
    _report(backend, t0, meta, title=f"tcplab tun serve ({backend.netns})", json_out=json_out,
            lang=lang, absolute=absolute, width=width, svg=svg, html=html, pcap=pcap)


async def _all_closed(backend: TunBackend) -> None:
    while any(c.state.synchronized for c in backend.host.conns.values()):
        await asyncio.sleep(0.02)


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


@tun.command("exec", context_settings={"ignore_unknown_options": True,
                                       "allow_interspersed_args": False})
@click.option("--netns", default=None,
              help="Namespace name [default: the only running tcplab namespace].")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(netns: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND inside a tcplab namespace: `tcplab tun exec -- curl http://192.0.2.2/`."""
    try:
        check_requirements()
        name = netns or find_running()
    except TunUnavailable as exc:
        raise _fail(exc) from None
    if not os.path.exists(f"/run/netns/{name}"):
        raise click.ClickException(f"no network namespace named {name}")
    try:
        os.execvp("ip", ["ip", "netns", "exec", name, *command])
    except OSError as exc:
        raise click.ClickException(f"cannot run ip netns exec: {exc.strerror}") from None


def _url_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """An origin-form path: it goes into the request line as it is."""
    if not value.startswith("/") or any(not 0x21 <= ord(c) <= 0x7E for c in value):
        raise click.BadParameter("must start with / and hold only visible ASCII "
                                 "(percent-encode the rest)")
    return value


@tun.command("connect")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="Port of the kernel's HTTP server.")
@click.option("--path", "url_path", default="/", show_default=True, callback=_url_path,
              help="Page to fetch.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Directory the kernel's server serves [default: a page "
                                 "made for the run].")
@click.option("--mtu", type=click.IntRange(576, 65535), default=1500, show_default=True)
@click.option("-6", "--ipv6", "ipv6", is_flag=True,
              help="Over IPv6: the kernel's server on 2001:db8::1, tcplab 2001:db8::2.")
@click.option("--no-offload", is_flag=True,
              help="Open the device without checksum and TSO offloads.")
@trace_options
def connect(port: int, url_path: str, root: Path | None, mtu: int, ipv6: bool,
            no_offload: bool, json_out: bool, lang: str, absolute: bool, width: int,
            svg: str | None, html: str | None, pcap: str | None) -> None:
    """tcplab fetches a page from `python -m http.server` run by the kernel in the namespace.

    http.server speaks HTTP/1.0 and closes first, so the kernel ends in
    TIME-WAIT and tcplab goes CLOSE-WAIT -> LAST-ACK -> CLOSED: the diagram shows
    both sides' states.
    """
    reject_unless(click.get_current_context(), not json_out, ["width"],
                  "to --json (no diagram is printed)")
    try:
        check_requirements()
    except TunUnavailable as exc:
        raise _fail(exc) from None
    _exit_on_sigterm()

    async def work(backend: TunBackend, directory: Path) -> tuple[float, str]:
        from tcplab.http.tun import http_get, start_kernel_http
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with backend:
            _offload_notice(backend)
            await start_kernel_http(backend, directory, port)
            backend.trace.note(loop.time(), f"kernel: python -m http.server {port} "
                                            f"--bind {backend.kernel_addr}")
            reply = await http_get(backend, port, url_path)
            lport = reply.local[1]
            with contextlib.suppress(TimeoutError):
                await backend.wait_kernel(
                    lambda socks: not any(s.remote_port == lport and s.state not in (
                        "TIME-WAIT",) for s in socks), 2.0, "the kernel's close")
            await asyncio.sleep(0.05)
            line = (f"HTTP {reply.status} from {backend.url_host(backend.kernel_addr)}:{port}"
                    f"{url_path}: "
                    f"{len(reply.body)} bytes")
        return t0, line

    async def main(directory: Path) -> tuple[TunBackend, float, str]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        _install_signals(loop, stop)
        backend = TunBackend(mtu=mtu, poll_interval=0.01, family=6 if ipv6 else 4,
                             offload=not no_offload)
        t0, line = await _until_stopped(work(backend, directory), stop, 30.0)
        return backend, t0, line

    with tempfile.TemporaryDirectory(prefix="tcplab-tun-") as tmp:
        directory = root
        if directory is None:
            directory = Path(tmp)
            (directory / "index.html").write_text(
                "<h1>Hello from the Linux kernel's TCP</h1>\n", encoding="utf-8")
        try:
            backend, t0, line = asyncio.run(main(directory))
        except (TunUnavailable, OSError, TimeoutError) as exc:
            raise _fail(exc) from None
        finally:
            remove_all_live()
            close_all_instances()
    click.echo(line, err=True)
    meta = {"command": "tun connect", "port": port, "path": url_path, "mtu": mtu,
            "netns": backend.netns, "family": 6 if ipv6 else 4, "offload": backend.vnet}
    _report(backend, t0, meta, title=f"tcplab tun connect ({backend.netns})",
            json_out=json_out, lang=lang, absolute=absolute, width=width, svg=svg, html=html,
            pcap=pcap)


__all__ = ["tun"]
