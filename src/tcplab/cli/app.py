"""The ``tcplab`` click application.

Each sub-command lives in its own module of this package and is registered in
:data:`COMMANDS`; a module is imported only when its command runs, so that
``tcplab --help`` stays fast and one broken optional dependency cannot break
every command. (The console script, :func:`tcplab.cli.main`, may answer a plain
``tcplab sockets`` before this module is imported at all.)
"""

from __future__ import annotations

import importlib
import sys

import click

from tcplab import __version__

# command name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("tcplab.cli.demo", "demo",
             "One whole connection life, simulated and explained (start here)."),
    "sockets": ("tcplab.cli.sockets", "sockets", "Inspect the kernel's TCP sockets: states, queues, timers, owners"),
    "watch": ("tcplab.cli.watch", "watch",
              "The kernel's own TCP, live: states, segments, retransmissions, resets (root)"),
    "http": ("tcplab.cli.http", "http", "A small, fast HTTP/1.1 server on kernel sockets"),
    "pcap": ("tcplab.cli.pcap", "pcap", "Draw the TCP connections of a pcap/pcapng capture, with both ends' states"),
    "packetdrill": ("tcplab.cli.packetdrill", "packetdrill", "Run packetdrill scripts against the engine, in virtual time"),
    "tun": ("tcplab.cli.tun", "tun",
            "tcplab's TCP on a TUN device, talking to the Linux kernel's TCP (needs root)"),
    "lab": ("tcplab.cli.lab", "lab", "Practice labs on kernel sockets: TIME-WAIT, SO_REUSEADDR, close storms"),
    "scenario": ("tcplab.cli.scenario", "scenario",
                 "Why three segments to open, four to close, and TIME-WAIT: run it, break it"),
    "compare": ("tcplab.cli.compare", "compare",
                "The engine and Linux, the same lesson side by side, and where they differ "
                "(root)"),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr, _help = entry
        module = importlib.import_module(module_name)
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the version, and which build runs (compiled or pure Python) and why."""
    if not value or ctx.resilient_parsing:
        return
    from tcplab import buildinfo

    click.echo(f"tcplab {__version__}, {buildinfo.describe()}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version,
              help="Show the version and which build runs (compiled or pure Python), and exit.")
def cli() -> None:
    """tcplab: see, run and break the TCP connection lifecycle.

    Start with `tcplab demo`: one whole connection life (three-way handshake,
    a request and a response, the four-way close, TIME-WAIT) on a simulated
    network with a virtual clock.
    """


def main() -> None:
    """Run the click application: turn expected errors into one clear line."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except OSError as exc:
        # A command that forgot to explain an operating-system error still
        # prints one line, not a traceback.
        click.echo(f"Error: {exc.strerror or exc}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
