"""The HTML report in a real browser: headless Chromium driven by selenium.

Uses Debian's chromium and chromium-driver (tools/install-system-deps.sh installs
them); never downloads a browser.  Without them the test skips, or fails
when TCPLAB_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from tcplab.render.html import report_html
from tcplab.render.sample import engine_trace


def png_colours(png: bytes) -> int:
    """Distinct RGB(A) colours of an 8-bit, non-interlaced RGB/RGBA PNG (a tiny decoder)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 0xFF
            elif f == 2:
                line[x] = (line[x] + b) & 0xFF
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 0xFF
        if y % 4 == 0:
            for x in range(0, stride, bpp * 3):
                colours.add(bytes(line[x:x + bpp]))
        prev = line
    return len(colours)


def test_report_steps_through_in_chromium(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    events = engine_trace()
    page = tmp_path / "report.html"
    page.write_text(report_html(events, title="One connection life",
                                explanation="Handshake, request, response, close.",
                                meta={"seed": 1}), encoding="utf-8")
    browser.get(page.as_uri())
    title = browser.find_element(By.ID, "step-title")
    nxt = browser.find_element(By.ID, "next")
    prev = browser.find_element(By.ID, "prev")
    assert browser.find_element(By.ID, "counter").text.startswith("Step 1 of ")
    assert "server: CLOSED → LISTEN" in title.text  # listen() comes first
    assert prev.get_attribute("disabled") is not None

    seen: list[str] = [title.text]
    tcb_texts: list[str] = []
    for _ in range(40):
        if nxt.get_attribute("disabled") is not None:
            break
        nxt.click()
        seen.append(title.text)
        tcb_texts.append(browser.find_element(By.ID, "tcb").text)
    joined = "\n".join(seen)
    assert "192.0.2.1:49002 → 192.0.2.2:80: SYN" in joined or ": SYN" in joined
    assert "SYN, ACK" in joined
    for arrow in ("CLOSED → SYN-SENT", "LISTEN → SYN-RECEIVED", "SYN-SENT → ESTABLISHED", "ESTABLISHED → FIN-WAIT-1",
                  "ESTABLISHED → CLOSE-WAIT", "FIN-WAIT-2 → TIME-WAIT", "LAST-ACK → CLOSED"):
        assert arrow in joined, arrow
    assert any("SND.UNA" in t and "RCV.NXT" in t and "TIME-WAIT" in t for t in tcb_texts)
    # the SYN step shows the segment's fields
    browser.find_element(By.TAG_NAME, "body")
    while prev.get_attribute("disabled") is None:
        prev.click()
        if title.text.endswith(": SYN"):
            break
    fields = browser.find_element(By.ID, "step-fields").text
    assert "flags S (SYN)" in fields and "seq" in fields and "mss 1460" in fields
    highlighted = browser.find_elements(By.CSS_SELECTOR, "#sequence .seg.current")
    assert len(highlighted) == 1

    shot = browser.get_screenshot_as_png()
    (tmp_path / "report.png").write_bytes(shot)
    assert png_colours(shot) > 20, "screenshot looks blank"
