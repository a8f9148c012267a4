"""Parameter types and checks shared by the tcplab commands.

Every value a user types is checked by click while it parses the command line, so a bad
value is one clear line (``Error: Invalid value for '--delay': 'nan' is not a finite
number.``) before anything runs:

* :class:`FiniteFloat`: a float in a range that is also finite. ``click.FloatRange``
  alone lets ``nan`` through (every comparison with nan is false), and a nan delay or MSL
  makes a simulation loop forever;
* :class:`OutputFile`: a file to write (``--svg``, ``--html``, ``--pcap``, ``--plot``):
  its directory must exist and be writable, so a run is not thrown away at the end;
* :data:`SEED`, :data:`WIDTH`, :data:`PORT`: the ranges used by several commands;
* :func:`one_of`: a callback for flags that exclude each other (``sockets -4 -6``);
* :func:`reject_unless`: switches that do not apply to what was asked are refused by
  name instead of being ignored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import click
from click.core import ParameterSource

__all__ = ["PORT", "SEED", "WIDTH", "FiniteFloat", "OutputFile", "given", "one_of",
           "reject_unless"]

SEED = click.IntRange(0, 2**63 - 1)
#: Terminal diagram width: below 50 columns the diagram has no room for its lifelines.
WIDTH = click.IntRange(50, 1000)
PORT = click.IntRange(0, 65535)


class FiniteFloat(click.FloatRange):
    """A finite float within ``[min, max]`` (ends open if asked); nan and inf refused."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


class OutputFile(click.Path):
    """A file the command will write: not a directory, in a directory that is writable."""

    def __init__(self, path_type: type[Any] | None = None) -> None:
        super().__init__(dir_okay=False, writable=True, path_type=path_type)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        result = super().convert(value, param, ctx)
        path = os.fsdecode(os.fspath(result))
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            self.fail(f"{directory}: no such directory.", param, ctx)
        if not os.path.exists(path) and not os.access(directory, os.W_OK | os.X_OK):
            self.fail(f"{directory}: not allowed to write there.", param, ctx)
        return result


def one_of(dest: str, values: dict[str, str], default: str
           ) -> Callable[[click.Context, click.Parameter, bool], bool]:
    """A callback for flags of which at most one may be given (``sockets -4``, ``-6``).

    Each flag is its own option (``expose_value=False``) whose name is a key of
    ``values``; the command gets ``dest`` set to the given flag's value, or ``default``.
    (Flags sharing one destination would let the last one win silently.)
    """

    def check(ctx: click.Context, param: click.Parameter, flag: bool) -> bool:
        ctx.params.setdefault(dest, default)
        if flag and param.name:
            seen: list[str] = ctx.meta.setdefault(f"tcplab.one_of.{dest}", [])
            if param.opts[0] not in seen:
                seen.append(param.opts[0])
            if len(seen) > 1:
                raise click.UsageError(f"{' and '.join(seen)} exclude each other.", ctx)
            ctx.params[dest] = values[param.name]
        return flag

    return check


def given(ctx: click.Context, names: Iterable[str]) -> list[str]:
    """The options among ``names`` (parameter names) that the user typed, as spelled."""
    out: list[str] = []
    by_name = {p.name: p for p in ctx.command.params}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            param = by_name[name]
            opts = param.opts
            if isinstance(param, click.Option) and param.secondary_opts \
                    and ctx.params.get(name) is False:
                opts = param.secondary_opts  # --absolute of --relative/--absolute
            out.append(opts[0] if opts else name)
    return out


def reject_unless(ctx: click.Context, condition: bool, names: Iterable[str],
                  why: str) -> None:
    """Unless ``condition``, the options ``names`` do not apply: one error naming them."""
    if condition:
        return
    typed = given(ctx, names)
    if typed:
        verb = "does" if len(typed) == 1 else "do"
        raise click.UsageError(f"{', '.join(typed)} {verb} not apply {why}.", ctx)
