"""Every text a learner reads, in English and Chinese: one catalogue per language.

The catalogues are ``tcplab/data/texts.en.json`` and ``tcplab/data/texts.zh.json``:
flat maps from a dotted key ("step.FIN-WAIT-2>TIME-WAIT", "svg.legend.lost",
"note.demo.listen") to a ``str.format`` template.  Both files hold the same
keys with the same placeholders (a test checks it), so nothing a learner
reads is left untranslated.  Numbers never live in the templates: the caller
passes them from the run (``{tw}`` is the run's TIME-WAIT length, formatted by
:func:`seconds`).

This module also measures and wraps text by *display cells* (a CJK character
is two terminal cells; rich's ``cell_len`` counts them) and knows the
punctuation of each language (full-width after Chinese text).

It imports nothing from tcplab, so every layer above the engine may use it.
"""

from __future__ import annotations

import json
import re
import string
from functools import cache
from importlib import resources
from typing import Any

from rich.cells import cell_len

LANGS = ("en", "zh")

_FORMATTER = string.Formatter()


class UnknownLanguage(ValueError):
    pass


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise UnknownLanguage(f"unknown language {lang!r}: use one of {', '.join(LANGS)}")
    return lang


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The whole catalogue of one language (key -> template)."""
    check_lang(lang)
    raw = resources.files("tcplab").joinpath("data", f"texts.{lang}.json").read_text("utf-8")
    doc: dict[str, str] = json.loads(raw)
    return doc


def has(key: str, lang: str = "en") -> bool:
    return key in catalogue(lang)


def text(key: str, lang: str = "en", /, **fmt: Any) -> str:
    """The text of ``key`` in ``lang``, formatted with ``fmt``.

    A key missing in ``lang`` falls back to English, and a key missing
    everywhere to the key itself (never an exception: a picture must not fail
    because of a text; the catalogue test catches what is missing).
    """
    template = catalogue(lang).get(key)
    if template is None:
        template = catalogue("en").get(key, key)
    if not fmt:
        return template
    try:
        return template.format(**fmt)
    except (KeyError, IndexError, ValueError):
        return template


def maybe(key: str, lang: str = "en", /, **fmt: Any) -> str | None:
    """Like :func:`text`, or None when the key is not in the catalogue."""
    if key not in catalogue("en") and key not in catalogue(lang):
        return None
    return text(key, lang, **fmt)


@cache
def _templates(prefix: str) -> list[tuple[re.Pattern[str], str]]:
    """The catalogue keys under ``prefix`` that are templates themselves
    ("causename.RST in {st}"), as regular expressions, most literal text first."""
    out: list[tuple[int, re.Pattern[str], str]] = []
    head = prefix + "."
    for key in catalogue("en"):
        if not key.startswith(head) or "{" not in key:
            continue
        parts = []
        literal = 0
        for lit, name, _spec, _conv in _FORMATTER.parse(key[len(head):]):
            parts.append(re.escape(lit))
            literal += len(lit)
            if name is not None:
                parts.append(f"(?P<{name}>.+?)")
        out.append((literal, re.compile("".join(parts), re.S), key))
    out.sort(key=lambda item: -item[0])
    return [(rx, key) for _n, rx, key in out]


#: template fields that are phrases themselves, translated recursively
_NESTED = frozenset({"reason", "why", "cause"})


def phrase(prefix: str, value: str, lang: str = "en") -> str | None:
    """A phrase the engine writes in English (a drop reason, a state's cause), in
    ``lang``: its exact catalogue entry ``prefix.value``, or a template entry that
    matches it whole, with the values it captured put in (nested phrases translated
    too).  None when the catalogue has neither."""
    exact = maybe(f"{prefix}.{value}", lang)
    if exact is not None:
        return exact
    for rx, key in _templates(prefix):
        m = rx.fullmatch(value)
        if m is None:
            continue
        fields = {k: (phrase(prefix, v, lang) or v) if k in _NESTED else v
                  for k, v in m.groupdict().items()}
        return text(key, lang, **fields)
    return None


def placeholders(template: str) -> set[str]:
    """The named fields of a template ("{tw} later" -> {"tw"})."""
    out: set[str] = set()
    for _lit, name, _spec, _conv in _FORMATTER.parse(template):
        if name is not None:
            out.add(name.split(".")[0].split("[")[0])
    return out


# ---------------------------------------------------------------- numbers and punctuation


def number(value: float) -> str:
    """A short decimal: 60 -> "60", 0.05 -> "0.05", 59.95 -> "60" (3 significant digits)."""
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 100:
        return f"{value:.0f}"
    digits = 3 - len(str(int(mag))) if mag >= 1 else 3
    text_ = f"{value:.{max(digits, 0)}f}" if mag >= 1 else f"{value:.3g}"
    if "." in text_ and "e" not in text_:
        text_ = text_.rstrip("0").rstrip(".")
    return text_


def seconds(value: float, lang: str = "en") -> str:
    """A duration in the unit a person would say: "60 s", "1.5 s", "200 ms", "35 µs"."""
    mag = abs(value)
    # Round first, then pick the unit, so that 0.9996 s is "1 s", not "1e+03 ms".
    if mag >= 0.9995 or mag == 0:
        return text("unit.s", lang, n=number(round(value, 3)))
    if mag >= 0.9995e-3:
        return text("unit.ms", lang, n=number(round(value * 1e3, 3)))
    return text("unit.us", lang, n=number(round(value * 1e6, 3)))


def colon(lang: str) -> str:
    """": " after English text, "：" after Chinese."""
    return "：" if lang == "zh" else ": "


def comma(lang: str) -> str:
    return "，" if lang == "zh" else ", "


def enum(lang: str) -> str:
    """Separator of a list of items: ", " or "、"."""
    return "、" if lang == "zh" else ", "


def paren(inner: str, lang: str) -> str:
    return f"（{inner}）" if lang == "zh" else f" ({inner})"


def yes_no(value: bool, lang: str) -> str:
    return text("word.yes" if value else "word.no", lang)


# ---------------------------------------------------------------- display width


def width(s: str) -> int:
    """Terminal cells of ``s`` (a CJK character takes two)."""
    return cell_len(s)


_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]")
#: characters a line must not start with (closing punctuation), nor end with (opening)
_NO_START = set("，。：；、！？）」』】》〉”’,.;:!?)]}%")
_NO_END = set("（「『【《〈“‘([{")
_TOKEN = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\u3000-\u303f]|\s+|[^\s\u2e80-\u9fff"
                    r"\uf900-\ufaff\uff00-\uffef\u3000-\u303f]+")


def has_cjk(s: str) -> bool:
    return _CJK.search(s) is not None


def wrap(s: str, cells: int) -> list[str]:
    """Lines of at most ``cells`` display cells: breaks at spaces, or between CJK characters.

    Closing punctuation never starts a line (it takes the word before it along),
    opening punctuation never ends one.  A word longer than a line is cut (and
    only then).
    """
    cells = max(cells, 4)
    out: list[str] = []
    for para in s.split("\n"):
        toks: list[str] = []          # the current line, token by token (spaces included)

        for tok in _TOKEN.findall(para):
            if tok.isspace():
                if toks:   # a run of spaces aligns columns (a table's row): kept
                    toks.append(tok if tok.strip(" ") == "" else " ")
                continue
            while width(tok) > cells:  # a word longer than a line: cut it
                _flush(toks, out)
                cut = _fit(tok, cells)
                out.append(tok[:cut])
                tok = tok[cut:]
            if width("".join(toks) + tok) <= cells:
                toks.append(tok)
                continue
            carry: list[str] = []
            if tok[0] in _NO_START:   # keep closing punctuation with the word before it
                while toks and toks[-1] == " ":
                    toks.pop()
                while toks:
                    carry.insert(0, toks.pop())
                    if carry[0][0] not in _NO_START:
                        break
            while toks and (toks[-1] == " " or toks[-1][-1] in _NO_END):
                last = toks.pop()
                if last != " ":
                    carry.insert(0, last)
            if width("".join([*carry, tok])) > cells:  # too narrow to keep them together
                toks.extend(carry)
                carry = []
            _flush(toks, out)
            toks.extend([*carry, tok])
        if toks or not out or para == "":
            line = "".join(toks).strip()
            if line or para == "":
                out.append(line)
    return out


def _flush(toks: list[str], out: list[str]) -> None:
    line = "".join(toks).strip()
    if line:
        out.append(line)
    toks.clear()


def _fit(s: str, cells: int) -> int:
    """How many characters of ``s`` fit in ``cells``."""
    used = 0
    for i, ch in enumerate(s):
        used += width(ch)
        if used > cells:
            return max(i, 1)
    return len(s)


def pad(s: str, cells: int, align: str = "<") -> str:
    """``s`` padded with spaces to ``cells`` display cells."""
    room = max(cells - width(s), 0)
    if align == ">":
        return " " * room + s
    if align == "^":
        return " " * (room // 2) + s + " " * (room - room // 2)
    return s + " " * room


def truncate(s: str, cells: int) -> str:
    """``s`` cut to ``cells`` display cells, ending in "…" when cut."""
    if width(s) <= cells:
        return s
    return s[:_fit(s, max(cells - 1, 0))] + "…" if cells > 1 else "…"
