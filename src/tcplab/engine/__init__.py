"""The sans-I/O TCP engine (RFC 9293): connections, listeners, TIME-WAIT, a host.

Nothing here reads a clock, touches a socket, or uses global random state:
every entry point takes ``now`` and randomness comes from the ``rng`` a
:class:`Host` is given.
"""

from tcplab.engine.config import TcpConfig
from tcplab.engine.connection import Connection
from tcplab.engine.errors import ERRORS, TcpError
from tcplab.engine.host import Binding, Host, Listener, Outgoing
from tcplab.engine.isn import IsnGenerator
from tcplab.engine.state import ALL_STATES, State
from tcplab.engine.timewait import TimeWaitEntry, TimeWaitTable

__all__ = [
    "ALL_STATES", "ERRORS", "Binding", "Connection", "Host", "IsnGenerator", "Listener",
    "Outgoing", "State", "TcpConfig", "TcpError", "TimeWaitEntry", "TimeWaitTable",
]
