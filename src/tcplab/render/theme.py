"""Light and dark colour themes shared by the SVG pictures and the HTML report."""

from __future__ import annotations

THEMES: dict[str, dict[str, str]] = {
    "light": {
        "bg": "#ffffff", "fg": "#1f2328", "muted": "#6e7781", "line": "#8c959f",
        "panel": "#f6f8fa", "border": "#d0d7de",
        "syn": "#0969da", "fin": "#8250df", "rst": "#cf222e", "data": "#1a7f37",
        "ack": "#57606a", "lost": "#cf222e",
        "state_bg": "#fff8c5", "state_fg": "#3d2c00", "state_stroke": "#d4a72c",
        "timer": "#bc4c00", "tw": "#8250df", "hl": "#d1242f", "hl_bg": "#ffebe9",
        "host0": "#0969da", "host1": "#bc4c00", "host2": "#1a7f37", "host3": "#8250df",
        "node_bg": "#f6f8fa", "current": "#fb8500",
    },
    "dark": {
        "bg": "#0d1117", "fg": "#e6edf3", "muted": "#8b949e", "line": "#6e7681",
        "panel": "#161b22", "border": "#30363d",
        "syn": "#58a6ff", "fin": "#d2a8ff", "rst": "#ff7b72", "data": "#3fb950",
        "ack": "#9da7b3", "lost": "#ff7b72",
        "state_bg": "#3b2e00", "state_fg": "#f2cc60", "state_stroke": "#bb8009",
        "timer": "#ffa657", "tw": "#d2a8ff", "hl": "#ff7b72", "hl_bg": "#3d1214",
        "host0": "#58a6ff", "host1": "#ffa657", "host2": "#3fb950", "host3": "#d2a8ff",
        "node_bg": "#161b22", "current": "#ffb703",
    },
}

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"


def palette(theme: str) -> dict[str, str]:
    """The colours of ``theme`` ("light" or "dark"); ValueError for anything else."""
    try:
        return THEMES[theme]
    except KeyError:
        raise ValueError(f"unknown theme {theme!r}: use 'light' or 'dark'") from None


def host_colour(pal: dict[str, str], index: int) -> str:
    return pal[f"host{index % 4}"]
