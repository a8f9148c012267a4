"""What the server serves: static files from a root directory and a page about the client.

The default page (``/`` without a root, and ``/__tcplab/`` always) shows the client its own
connection as the server sees it: both ends, and the kernel's socket for it (state,
queues, timer) read through sock_diag when the connection runs on the kernel's TCP.

Static files: the request path is percent-decoded, split into segments, and refused (403)
if any segment is ``..`` or holds a NUL or a backslash; the resolved file must still lie
inside the root (symlinks pointing out are refused too). A lookup the file system refuses
(a name longer than NAME_MAX: ENAMETOOLONG, a path through a file: ENOTDIR, EACCES) is a
404, never a 500. A path ending in "/" names a directory, so ``/file.txt/`` is 404; a
directory asked for without the slash is redirected to its cleaned path with one, so
``//sub`` goes to ``/sub/`` and never to the scheme-relative ``//sub/`` (another host, for
a browser). Content types come from a fixed table first, so they do not depend on the
machine's /etc/mime.types.
"""

from __future__ import annotations

import errno
import html
import json
import mimetypes
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from tcplab.http.messages import Handler, Request, Response, error_response

__all__ = ["CONTENT_TYPES", "content_type_for", "hello_handler", "make_handler"]

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".pdf": "application/pdf",
    ".wasm": "application/wasm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".tar": "application/x-tar",
    ".pcap": "application/vnd.tcpdump.pcap",
}

# Files bigger than this are refused.
MAX_FILE_BYTES = 256 * 1024 * 1024
# Files up to this size are read at once; bigger ones are sent from the open file, one
# piece at a time as the client reads (HttpConnection.send_next).
READ_AT_ONCE_BYTES = 256 * 1024

SocketLookup = Callable[[tuple[str, int], tuple[str, int]], Any]


def content_type_for(path: Path) -> str:
    ctype = CONTENT_TYPES.get(path.suffix.lower())
    if ctype is None:
        guessed, _ = mimetypes.guess_type(path.name)
        ctype = guessed or "application/octet-stream"
    return ctype


def hello_handler(request: Request) -> Response:
    """The benchmark's hello-world."""
    return Response(200, [("Content-Type", "text/plain")], b"Hello, world!")


def make_handler(root: Path | None = None, lookup: SocketLookup | None = None) -> Handler:
    """The server's handler: static files under ``root`` and the connection page."""
    root_resolved = root.resolve() if root is not None else None

    def handler(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            resp = error_response(405, f"{request.method} is not served here")
            resp.headers.append(("Allow", "GET, HEAD"))
            resp.close = False
            return resp
        if request.path.startswith("/__tcplab/") or request.path == "/__tcplab":
            return connection_page(request, lookup)
        if root_resolved is None:
            if request.path == "/":
                return connection_page(request, lookup)
            return error_response(404, "no such page (start with --root DIR to serve files)")
        return static_file(root_resolved, request)

    return handler


def _safe_parts(raw_path: str) -> list[str] | None:
    """The path's segments, or None if it tries to leave the root."""
    decoded = unquote(raw_path, errors="strict") if "%" in raw_path else raw_path
    parts: list[str] = []
    for seg in decoded.split("/"):
        if seg in ("", "."):
            continue
        if seg == ".." or "\x00" in seg or "\\" in seg:
            return None
        parts.append(seg)
    return parts


def static_file(root: Path, request: Request) -> Response:
    try:
        parts = _safe_parts(request.path)
    except UnicodeDecodeError:
        parts = None
    if parts is None:
        resp = error_response(403, "path leaves the served directory")
        resp.close = False
        return resp
    try:
        return _serve_path(root, parts, request)
    except OSError as exc:
        # Any failed lookup (ENAMETOOLONG for a segment over NAME_MAX, EACCES, ELOOP...)
        # means there is nothing to serve under that name.
        if exc.errno == errno.ENAMETOOLONG:
            return _not_found("no such file (a name in the path is too long)")
        return _not_found()


def _serve_path(root: Path, parts: list[str], request: Request) -> Response:
    target = root.joinpath(*parts)
    try:
        resolved = target.resolve()
    except RuntimeError:  # a symlink loop
        return _not_found()
    if resolved != root and root not in resolved.parents:
        resp = error_response(403, "path leaves the served directory")
        resp.close = False
        return resp
    try:
        st = resolved.stat()
    except FileNotFoundError:
        return _not_found()
    if stat.S_ISDIR(st.st_mode):
        if not request.path.endswith("/"):
            # Built from the cleaned segments, so "//sub" cannot become the scheme-relative
            # "//sub/" (another host, for a browser).
            location = "/" + "".join(quote(p, safe="") + "/" for p in parts)
            if request.query:
                location += "?" + request.query
            return Response(301, [("Location", location),
                                  ("Content-Type", "text/plain; charset=utf-8")],
                            b"moved to a trailing slash\n")
        index = resolved / "index.html"
        if index.is_file():
            resolved = index
            st = resolved.stat()
        else:
            return _listing(resolved, request.path)
    elif request.path.endswith("/"):
        return _not_found()  # "/file.txt/" names a directory, and there is none
    if not stat.S_ISREG(st.st_mode):
        return _not_found()
    size = st.st_size
    if size > MAX_FILE_BYTES:
        resp = error_response(403, "file too large to serve")
        resp.close = False
        return resp
    headers = [("Content-Type", content_type_for(resolved))]
    if request.method == "HEAD":
        headers.append(("Content-Length", str(size)))
        return Response(200, headers)
    if size <= READ_AT_ONCE_BYTES:
        return Response(200, headers, resolved.read_bytes())
    fp = resolved.open("rb")
    # The length is the one just seen: what the file holds then is what is sent.
    return Response(200, headers, file=fp, file_size=size)


def _not_found(detail: str = "no such file") -> Response:
    resp = error_response(404, detail)
    resp.close = False
    return resp


def _listing(directory: Path, url_path: str) -> Response:
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return _not_found()
    items = []
    for name in names:
        slash = "/" if (directory / name).is_dir() else ""
        items.append(f'<li><a href="{html.escape(name + slash, quote=True)}">'
                     f"{html.escape(name + slash)}</a></li>")
    body = (f"<!doctype html><meta charset=utf-8><title>{html.escape(url_path)}</title>"
            f"<h1>{html.escape(url_path)}</h1><ul>{''.join(items)}</ul>\n")
    return Response(200, [("Content-Type", "text/html; charset=utf-8")], body.encode())


def connection_facts(request: Request, lookup: SocketLookup | None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "client": f"{request.client[0]}:{request.client[1]}",
        "server": f"{request.server[0]}:{request.server[1]}",
        "request": f"{request.method} {request.target} HTTP/{request.version}",
        "keep_alive": request.keep_alive,
        "headers": request.headers,
        "kernel_socket": None,
    }
    if lookup is not None:
        try:
            sock = lookup(request.server, request.client)
        except OSError:
            sock = None
        if sock is not None:
            facts["kernel_socket"] = {
                "state": sock.state, "recv_q": sock.recv_q, "send_q": sock.send_q,
                "timer": sock.timer, "expires_ms": sock.expires_ms, "uid": sock.uid,
                "inode": sock.inode,
            }
    return facts


def connection_page(request: Request, lookup: SocketLookup | None) -> Response:
    facts = connection_facts(request, lookup)
    if "json" in request.query or "application/json" in (request.header("accept") or ""):
        return Response(200, [("Content-Type", "application/json")],
                        json.dumps(facts, indent=1).encode())
    e = html.escape
    ks = facts["kernel_socket"]
    if ks:
        kernel = (f"<p>The kernel's socket for it, on the server's side: <b>{e(ks['state'])}</b>, "
                  f"receive queue {ks['recv_q']} bytes, send queue {ks['send_q']} bytes"
                  + (f", timer {e(ks['timer'])} ({ks['expires_ms']} ms left)" if ks['timer']
                     else "") + f", inode {ks['inode']}.</p>")
    else:
        kernel = "<p>(The kernel's socket for it could not be read here.)</p>"
    headers = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in request.headers)
    body = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tcplab: your connection</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em}}
code,td{{font-family:ui-monospace,monospace}}td{{padding:0 .8em 0 0}}</style></head>
<body><h1>Your connection, as this server sees it</h1>
<p>You are <code>{e(facts['client'])}</code>; this server is
<code>{e(facts['server'])}</code>. Your request: <code>{e(facts['request'])}</code>
(keep-alive: {'yes' if request.keep_alive else 'no'}).</p>
{kernel}
<p>Stop this server with Ctrl+C now: it closes this connection first, so its side
becomes the active closer and waits in TIME-WAIT (60 s on Linux). Then run
<code>tcplab sockets --state time-wait --port {request.server[1]}</code> and try to start
it again.</p>
<h2>Request headers</h2><table>{headers}</table>
<p><a href="/__tcplab/?json">as JSON</a></p>
</body></html>
"""
    return Response(200, [("Content-Type", "text/html; charset=utf-8"),
                          ("Cache-Control", "no-store")], body.encode())
