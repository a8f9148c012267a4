"""Regenerate the report screenshots of docs/pictures (README and docs/pictures.md show them).

    .venv/bin/python tools/screenshots.py [--out docs/pictures]

Runs ``tcplab demo`` and the lost-final-ack and stale-segment scenarios with ``--html``
(English and Chinese), opens each report in headless Debian Chromium (selenium, as the
browser tests do; tools/install-system-deps.sh installs it) 1400 px wide, and saves the
top of the page as PNG.  Also rewrites docs/pictures/demo.svg from ``tcplab demo``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = {
    "demo": ["demo"],
    "lost-final-ack": ["scenario", "run", "lost-final-ack"],
    "stale-segment": ["scenario", "run", "stale-segment"],
}
WIDTH, HEIGHT = 1400, 1100


def tcplab(*args: str) -> None:
    exe = Path(sys.executable).with_name("tcplab")
    subprocess.run([str(exe), *args], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "pictures")
    args = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    profile = tempfile.mkdtemp(prefix="tcplab-shots-")
    work = Path(tempfile.mkdtemp(prefix="tcplab-reports-"))
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        tcplab("demo", "--svg", str(args.out / "demo.svg"))
        for name, argv in REPORTS.items():
            for lang in ("en", "zh"):
                html = work / f"{name}.{lang}.html"
                tcplab(*argv, "--lang", lang, "--html", str(html))
                driver.get(html.as_uri())
                png = args.out / f"report-{name}.{lang}.png"
                driver.save_screenshot(str(png))
                print(png.relative_to(ROOT) if png.is_relative_to(ROOT) else png)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
