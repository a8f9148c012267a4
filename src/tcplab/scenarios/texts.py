"""The scenarios' texts (en, zh), read from ``tcplab/data/scenarios.json``."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

LANGS = ("en", "zh")


@cache
def _doc() -> dict[str, Any]:
    raw = resources.files("tcplab").joinpath("data", "scenarios.json").read_text("utf-8")
    doc: dict[str, Any] = json.loads(raw)
    return doc


def _pick(entry: dict[str, str], lang: str) -> str:
    return entry.get(lang) or entry["en"]


def scenario_text(name: str, field: str, lang: str = "en") -> str | None:
    """``summary``, ``watch``, ``demonstrates`` or ``counterfactual`` of a scenario."""
    entry = _doc()["scenarios"].get(name, {}).get(field)
    return _pick(entry, lang) if entry else None


def ui(key: str, lang: str = "en", **fmt: Any) -> str:
    text = _pick(_doc()["ui"][key], lang)
    return text.format(**fmt) if fmt else text


def causes(lang: str = "en") -> dict[str, str]:
    """Explanations of state changes keyed by their trace ``cause``."""
    return {k: _pick(v, lang) for k, v in _doc()["causes"].items()}


def documented() -> list[str]:
    return list(_doc()["scenarios"])
