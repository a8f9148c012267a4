"""A small, fast HTTP/1.1 server whose HTTP logic knows nothing of sockets.

Layers, each importing only the ones before it:

- :mod:`~tcplab.http.messages`: requests, responses, limits, serialisation;
- :mod:`~tcplab.http.connection`: one connection, sans I/O (bytes in, bytes out);
- :mod:`~tcplab.http.app`: the handler (static files, the connection page);
- :mod:`~tcplab.http.protocol`: an ``asyncio.Protocol`` for any stream transport,
  :func:`make_http_protocol_factory`;
- :mod:`~tcplab.http.server`: running it on the kernel's TCP (bind, explain, stop).
"""

from tcplab.http.messages import Handler, Limits, Request, Response
from tcplab.http.protocol import make_http_protocol_factory

__all__ = ["Handler", "Limits", "Request", "Response", "make_http_protocol_factory"]
