"""``tcplab tun``: tcplab's TCP on a TUN device, talking to the Linux kernel's TCP.

``serve`` puts tcplab's stack (192.0.2.2) behind a TUN device in a private
namespace and listens; ``exec`` runs a command (curl, python, nc) inside that
namespace, where the kernel (192.0.2.1) talks to tcplab; ``connect`` makes
tcplab the client of a kernel server (``python -m http.server``) started in a
fresh namespace.  Both sides' states end up in one trace: tcplab's from the
engine, the kernel's from sock_diag.
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
from tcplab.cli.params import reject_unless
from tcplab.kernel.tracefs import close_all_live as close_all_instances
from tcplab.trace import Event, to_json_event
from tcplab.tun.backend import TunBackend
from tcplab.tun.netns import TunUnavailable, check_requirements, find_running, remove_all_live

_MAX_DIAGRAM_SEGMENTS = 400
T = TypeVar("T")


@click.group("tun")
def tun() -> None:
    """tcplab's TCP on a TUN device in a private namespace, against the kernel's TCP.

    Needs root (or CAP_NET_ADMIN), /dev/net/tun and the `ip` command.  The
    namespace (tcplab-PID-N) holds only the device: the kernel is 192.0.2.1,
    tcplab's stack 192.0.2.2, and there is no route out.
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


@tun.command("serve")
@click.option("--http", "use_http", is_flag=True,
              help="Serve HTTP/1.1 (tcplab's HTTP server) instead of echo.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on [default: 80 with --http, else 7 (echo)].")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="With --http: serve static files from this directory.")
@click.option("--mtu", type=click.IntRange(576, 65535), default=1500, show_default=True,
              help="MTU of the TUN device.")
@trace_options
def serve(use_http: bool, port: int | None, root: Path | None, mtu: int, json_out: bool,
          lang: str, absolute: bool, width: int, svg: str | None, html: str | None,
          pcap: str | None) -> None:
    """tcplab listens behind a TUN device until Ctrl+C; try `tcplab tun exec -- curl ...`.

    On Ctrl+C the server closes its connections first, and the trace (both
    sides' segments and states) is printed or written as asked.
    """
    ctx = click.get_current_context()
    reject_unless(ctx, use_http, ["root"], "without --http (the echo server serves no files)")
    reject_unless(ctx, not json_out, ["width"], "to --json (no diagram is printed)")
    port = port if port is not None else (80 if use_http else 7)
    try:
        check_requirements()
    except TunUnavailable as exc:
        raise _fail(exc) from None
    _exit_on_sigterm()

    async def main() -> tuple[TunBackend, float, int]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        _install_signals(loop, stop)
        backend = TunBackend(mtu=mtu)
        t0 = loop.time()
        async with backend:
            from tcplab.api import transports as aio
            if use_http:
                from tcplab.http.tun import start_http
                server, state = await start_http(backend, port, root)
            else:
                server = await aio.start_server(backend.host, _Echo, port=port,
                                                kick=backend.kick)
                state = None
            what = "HTTP" if use_http else "echo"
            url = (f"http://{backend.addr}/" if port == 80 else
                   f"http://{backend.addr}:{port}/")
            try_cmd = (f"tcplab tun exec -- curl {url}" if use_http else
                       f"tcplab tun exec -- nc {backend.addr} {port}")
            click.echo(f"namespace {backend.netns}: tcplab {backend.addr}:{port} serves {what}; "
                       f"the kernel is {backend.kernel_addr}.", err=True)
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
            total = state.total_connections if state is not None else len(server.transports)
        return backend, t0, total

    try:
        backend, t0, total = asyncio.run(main())
    except TunUnavailable as exc:
        raise _fail(exc) from None
    finally:
        remove_all_live()
        close_all_instances()
    click.echo(f"stopped after {total} connection(s); namespace {backend.netns} removed.",
               err=True)
    meta = {"command": "tun serve", "http": use_http, "port": port, "mtu": mtu,
            "netns": backend.netns}
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
@trace_options
def connect(port: int, url_path: str, root: Path | None, mtu: int, json_out: bool, lang: str,
            absolute: bool, width: int, svg: str | None, html: str | None,
            pcap: str | None) -> None:
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
            line = (f"HTTP {reply.status} from {backend.kernel_addr}:{port}{url_path}: "
                    f"{len(reply.body)} bytes")
        return t0, line

    async def main(directory: Path) -> tuple[TunBackend, float, str]:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        _install_signals(loop, stop)
        backend = TunBackend(mtu=mtu, poll_interval=0.01)
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
            "netns": backend.netns}
    _report(backend, t0, meta, title=f"tcplab tun connect ({backend.netns})",
            json_out=json_out, lang=lang, absolute=absolute, width=width, svg=svg, html=html,
            pcap=pcap)


__all__ = ["tun"]
