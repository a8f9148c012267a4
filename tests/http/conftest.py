"""A live server on an ephemeral loopback port with small limits, and a client for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from http_test_client import TEST_LIMITS, Client

from tcplab.http.server import ServerThread


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "style.css").write_text("h1{}")
    (site / "app.js").write_text("1")
    (site / "data.json").write_text("{}")
    (site / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (site / "notes.txt").write_text("hello notes")
    (site / "blob.unknownext").write_bytes(b"\0\1")
    (site / "sub").mkdir()
    (site / "sub" / "page.html").write_text("sub page")
    (site / "space name.txt").write_text("spaced")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (site / "escape").symlink_to(tmp_path / "secret.txt")
    return site


@pytest.fixture
def server(root: Path) -> Iterator[ServerThread]:
    with ServerThread(limits=TEST_LIMITS, root=root) as srv:
        yield srv


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    c = Client(server.port)
    try:
        yield c
    finally:
        c.close()
