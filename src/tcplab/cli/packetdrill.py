"""``tcplab packetdrill run PATH...``: packetdrill scripts against the engine, in virtual time."""

from __future__ import annotations

import json
import sys

import click


@click.group("packetdrill")
def packetdrill() -> None:
    """Run packetdrill scripts against the tcplab engine, in virtual time (no root, no sleeping)."""


@packetdrill.command("run")
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--profile", type=click.Choice(["portable", "freebsd", "linux", "linux-explore"]),
              default="portable", show_default=True,
              help="portable adapts FreeBSD policy expectations (and records each adaptation);"
                   " freebsd checks them as written; linux runs Linux's own scripts (its"
                   " sysctls mapped onto the engine, TSO-sized packets, tcpi_ checks);"
                   " linux-explore also runs scripts that need timestamps, SACK or Fast Open"
                   " with those options dropped, to find what else differs (a diagnosis).")
@click.option("--define", "defines", multiple=True, metavar="NAME[=VALUE]",
              help="Define a name for #ifdef (repeatable).")
@click.option("-v", "--verbose", is_flag=True, help="List passing scripts too.")
def run(paths: tuple[str, ...], as_json: bool, profile: str, defines: tuple[str, ...],
        verbose: bool) -> None:
    """Run the scripts in PATHS (files, or folders searched recursively for *.pkt).

    Exits 1 when a script fails or does not parse.
    """
    from tcplab.packetdrill.report import Result
    from tcplab.packetdrill.runner import find_scripts, run_paths

    defs: dict[str, str] = {}
    for d in defines:
        name, _sep, value = d.partition("=")
        if not name:
            raise click.BadParameter(f"{d!r}: expected NAME or NAME=VALUE", param_hint="--define")
        defs[name] = value or "1"
    try:
        total = len(find_scripts(paths))
    except FileNotFoundError as exc:
        raise click.ClickException(f"no such file or folder: {exc.args[0]}") from None
    if total == 0:
        raise click.ClickException("no packetdrill scripts (*.pkt) found in " + " ".join(paths))
    show = not as_json and total > 20 and sys.stderr.isatty()

    def progress(i: int, n: int, res: Result) -> None:
        if show and (i % 25 == 0 or i == n):
            click.echo(f"\r{i}/{n} scripts", nl=i == n, err=True)

    report = run_paths(paths, profile, defs, progress)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(report.text(verbose))
    t = report.totals
    if t.failed or t.errors:
        sys.exit(1)
