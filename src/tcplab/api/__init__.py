"""The application programming interfaces over the engine, for any backend.

* :mod:`tcplab.api.sockets`: a blocking socket API shaped like Python's
  ``socket`` (``TcpSocket``), waiting through a backend's driver;
* :mod:`tcplab.api.transports`: asyncio transports, protocols and streams on
  engine connections (``start_server``, ``open_connection``, ...).

The simulator (:mod:`tcplab.sim`) and the TUN device (:mod:`tcplab.tun`) plug in
underneath; the same application code runs on both.
"""
