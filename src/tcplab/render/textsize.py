"""How wide a text is when drawn: the layout's estimate of a label's box.

The SVG pictures place labels so that none overlaps another and none leaves
the drawing; for that they need each label's width before any browser has
drawn it.  The estimate uses the advance widths of DejaVu Sans (the first
font the pictures ask for; Helvetica and Arial, the fallbacks, are narrower),
regular and bold, for printable ASCII, and one em for every other character
(CJK ideographs and full-width punctuation are one em wide in every CJK font;
arrows and symbols are at most that), plus a small margin.
"""

from __future__ import annotations

# Advance widths in thousandths of an em, printable ASCII (32..126), 4 digits each.
_REGULAR = (
    "0318040104600838063609500780027503900390050008380318036103180337063606360636063606360636"
    "0636063606360636033703370838083808380531100006840686069807700632057507750752029502950656"
    "0557086307480787060307870695063506110732068409890685061106850390033703900838050005000613"
    "0635055006350615035206350634027802780579027809740634061206350635041105210392063405920818"
    "0592059205250636033706360838")
_BOLD = (
    "0348045605210838069610020872030604570457052308380380041503800365069606960696069606960696"
    "0696069606960696040004000838083808380580100007740762073408300683068308210837037203720775"
    "0637099508370850073308500770072006820812077411030771072407250457036504570838050005000675"
    "0716059307160678043507160712034303430665034310420712068707160716049305950478071206520924"
    "0645065205820712036507120838")

_W = [int(_REGULAR[i:i + 4]) / 1000 for i in range(0, len(_REGULAR), 4)]
_WB = [int(_BOLD[i:i + 4]) / 1000 for i in range(0, len(_BOLD), 4)]
MARGIN = 1.04


_MONO_EM = 0.602  # every character of DejaVu Sans Mono


def text_width(s: str, size: float, bold: bool = False, mono: bool = False) -> float:
    """Width in px of ``s`` at font size ``size`` (px), in the sans font or (``mono``) DejaVu
    Sans Mono."""
    table = _WB if bold else _W
    em = 0.0
    for ch in s:
        o = ord(ch)
        if 32 <= o < 127:
            em += _MONO_EM if mono else table[o - 32]
        else:
            em += 1.0
    return em * size * MARGIN
