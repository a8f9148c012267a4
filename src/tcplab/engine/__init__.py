"""The sans-I/O TCP engine (RFC 9293): connections, listeners, TIME-WAIT, a host.

Nothing here reads a clock, touches a socket, or uses global random state:
every entry point takes ``now`` and randomness comes from the ``rng`` a
:class:`Host` is given.

Modules, by what they hold:

* :mod:`~tcplab.engine.connection`: the TCB and RFC 9293 3.10 (segment arrives,
  user calls, timeouts); holds no Host;
* :mod:`~tcplab.engine.host`: demultiplexing, LISTEN and CLOSED processing;
* :mod:`~tcplab.engine.context`: the queues a connection's outputs go to;
* :mod:`~tcplab.engine.listener`: SYN queue, accept queue, SYN cookies;
* :mod:`~tcplab.engine.ports`: bind(), ephemeral ports, SO_REUSEADDR;
* :mod:`~tcplab.engine.timewait`: TIME-WAIT as compact entries;
* :mod:`~tcplab.engine.rtt` (RFC 6298), :mod:`~tcplab.engine.congestion`
  (RFC 5681/6582), :mod:`~tcplab.engine.reassembly`,
  :mod:`~tcplab.engine.options` (SYN options), :mod:`~tcplab.engine.isn`
  (RFC 6528), :mod:`~tcplab.engine.counters` (Linux's nstat names);
* :mod:`~tcplab.engine.config`, :mod:`~tcplab.engine.state`,
  :mod:`~tcplab.engine.errors`.
"""

from tcplab.engine.config import TcpConfig
from tcplab.engine.connection import Connection
from tcplab.engine.context import EngineContext, Outgoing
from tcplab.engine.counters import Counters
from tcplab.engine.errors import ERRORS, TcpError
from tcplab.engine.host import Host
from tcplab.engine.isn import ChosenIsn, IsnGenerator, IsnSource
from tcplab.engine.listener import Listener
from tcplab.engine.ports import WILDCARDS, Binding
from tcplab.engine.state import ALL_STATES, State
from tcplab.engine.timewait import TimeWait, TimeWaitEntry, TimeWaitTable

__all__ = [
    "ALL_STATES", "ERRORS", "WILDCARDS", "Binding", "ChosenIsn", "Connection", "Counters",
    "EngineContext", "Host", "IsnGenerator", "IsnSource", "Listener", "Outgoing", "State",
    "TcpConfig", "TcpError", "TimeWait", "TimeWaitEntry", "TimeWaitTable",
]
