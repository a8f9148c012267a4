"""``tcplab http serve``: the HTTP/1.1 server on the kernel's TCP."""

from __future__ import annotations

from pathlib import Path

import click

from tcplab.cli.params import PORT, FiniteFloat
from tcplab.http.messages import Limits
from tcplab.http.server import ServeConfig, ServerStartError, run_server


@click.group("http")
def http() -> None:
    """A small, fast HTTP/1.1 server (keep-alive, pipelining, static files)."""


@http.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=PORT, default=8080, show_default=True)
@click.option("--reuseaddr/--no-reuseaddr", default=True, show_default=True,
              help="Set SO_REUSEADDR on the listening socket (--no-reuseaddr reproduces the "
                   "article's failed restart).")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Serve static files from this directory.")
@click.option("--max-connections", type=click.IntRange(1, 100_000), default=512,
              show_default=True)
@click.option("--keepalive-timeout", type=FiniteFloat(0.1, 3600), default=5.0,
              show_default=True, help="Seconds an idle connection is kept open.")
@click.option("--request-timeout", type=FiniteFloat(0.1, 3600), default=10.0,
              show_default=True, help="Seconds a request may take to arrive in full.")
@click.option("--max-pipelined", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Requests read ahead of their answers on one connection.")
@click.option("--send-timeout", type=FiniteFloat(0.1, 3600), default=30.0, show_default=True,
              help="Seconds a client may leave its answers unread before it is dropped.")
@click.option("--access-log", is_flag=True, help="Print one line per request to stderr.")
@click.option("--no-uvloop", is_flag=True, help="Use asyncio's own loop even if uvloop is installed.")
def serve(host: str, port: int, reuseaddr: bool, root: Path | None, max_connections: int,
          keepalive_timeout: float, request_timeout: float, max_pipelined: int,
          send_timeout: float, access_log: bool, no_uvloop: bool) -> None:
    """Serve HTTP/1.1 on HOST:PORT until Ctrl+C (the server closes its connections first).

    Without --root, / shows your own connection as the server sees it.
    """
    limits = Limits(max_connections=max_connections, keepalive_timeout=keepalive_timeout,
                    request_timeout=request_timeout, max_pipelined=max_pipelined,
                    send_timeout=send_timeout)
    config = ServeConfig(host=host, port=port, reuseaddr=reuseaddr, root=root, limits=limits,
                         access_log=access_log, use_uvloop=not no_uvloop)
    try:
        state = run_server(config, announce=lambda line: click.echo(line, err=False))
    except ServerStartError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"tcplab http: stopped after {state.total_connections} connection(s); "
               "open connections were closed by the server first.")
