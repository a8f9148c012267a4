"""The scenarios' texts (en, zh), from the one catalogue per language (:mod:`tcplab.i18n`).

A scenario ``NAME`` has ``scenario.NAME.summary``, ``.watch``, ``.demonstrates``
and, when it has a switch, ``.counterfactual``.  Numbers a run can change are
placeholders filled from the run (``{msl}``, ``{tw}``).
"""

from __future__ import annotations

from typing import Any

from tcplab.i18n import LANGS, catalogue, maybe, seconds
from tcplab.i18n import text as _text

__all__ = ["LANGS", "causes", "documented", "scenario_text", "ui"]

#: scenario constants some texts quote (MSL is 30 s in every scenario)
_DEFAULTS = {"msl": 30.0, "tw": 60.0}


def scenario_text(name: str, field: str, lang: str = "en", **fmt: Any) -> str | None:
    """``summary``, ``watch``, ``demonstrates`` or ``counterfactual`` of a scenario."""
    values = {k: seconds(v, lang) for k, v in _DEFAULTS.items()}
    values.update(fmt)
    return maybe(f"scenario.{name}.{field}", lang, **values)


def ui(key: str, lang: str = "en", **fmt: Any) -> str:
    return _text(f"ui.{key}", lang, **fmt)


def causes(lang: str = "en") -> dict[str, str]:
    """Explanations of state changes keyed by their trace ``cause``."""
    return {k[len("cause."):]: v for k, v in catalogue(lang).items() if k.startswith("cause.")}


def documented() -> list[str]:
    names: list[str] = []
    for key in catalogue("en"):
        if key.startswith("scenario.") and key.count(".") >= 2:
            name = key.split(".")[1]
            if name not in names:
                names.append(name)
    return names
