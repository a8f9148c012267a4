"""Run packetdrill scripts against the tcplab engine, in virtual time.

``script`` parses the language, ``sockets`` maps the socket calls onto a
:class:`~tcplab.engine.Host`, ``profile`` turns FreeBSD shell lines and
policy expectations into engine settings and recorded adaptations,
``matcher`` compares what the engine sent with what a script expects, and
``interpreter`` runs one script; ``report`` collects the results.
"""
