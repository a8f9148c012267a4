"""A host's TCP counters, named as Linux's ``nstat`` names them.

``nstat -az`` on Linux prints the kernel's SNMP counters (``TcpOutRsts``,
``TcpExtListenOverflows``, ...).  tcplab counts the same events under the
same names, so what a learner sees here can be compared with a real server.
Only names listed in :data:`KNOWN` can be counted: a typo is an error, not a
new counter nobody reads.
"""

from __future__ import annotations

from collections.abc import Iterator

#: name -> what it counts (the kernel's meaning; see include/uapi/linux/snmp.h).
KNOWN: dict[str, str] = {
    "TcpActiveOpens": "connections that went SYN-SENT (connect())",
    "TcpPassiveOpens": "connections that went SYN-RECEIVED from LISTEN",
    "TcpAttemptFails": "SYN-SENT/SYN-RECEIVED connections that went to CLOSED or back to LISTEN",
    "TcpEstabResets": "ESTABLISHED or CLOSE-WAIT connections that were reset",
    "TcpInSegs": "segments received",
    "TcpOutSegs": "segments sent",
    "TcpRetransSegs": "segments retransmitted",
    "TcpInErrs": "segments received with errors (bad checksum, malformed)",
    "TcpOutRsts": "segments sent with RST",
    "TcpExtSyncookiesSent": "SYN cookies sent",
    "TcpExtSyncookiesRecv": "valid SYN cookies received",
    "TcpExtSyncookiesFailed": "invalid SYN cookies received",
    "TcpExtListenOverflows": "times the accept queue was full",
    "TcpExtListenDrops": "SYNs and ACKs dropped by a listener",
    "TcpExtTCPChallengeACK": "challenge ACKs sent (RFC 5961)",
    "TcpExtTCPSYNChallenge": "SYNs answered with a challenge ACK",
    "TcpExtTCPTimeWaitOverflow": "TIME-WAIT entries not kept: tcp_max_tw_buckets reached",
    "TcpExtTW": "connections that finished TIME-WAIT",
    "TcpExtTWRecycled": "TIME-WAIT entries reused by connect() (tcp_tw_reuse)",
    "TcpExtTCPAbortOnTimeout": "connections aborted: retransmissions or keep-alive ran out",
    "TcpExtTCPAbortOnData": "connections reset because data arrived after close()",
    "TcpExtTCPAbortOnClose": "connections reset by close() with unread data",
    "TcpExtTCPAbortOnLinger": "connections reset by close() with SO_LINGER 0",
    "TcpExtTCPAbortOnMemory": "orphans reset for lack of memory",
    "TcpExtPAWSActive": "SYN-ACKs rejected by PAWS",
    "TcpExtPAWSEstab": "segments rejected by PAWS in synchronized states",
    "TcpExtTCPKeepAlive": "keep-alive probes sent",
    "TcpExtTCPFastOpenActive": "Fast Open SYNs with data acknowledged",
    "TcpExtTCPFastOpenActiveFail": "Fast Open SYNs whose data was not acknowledged",
    "TcpExtTCPFastOpenPassive": "Fast Open SYNs with data accepted",
    "TcpExtTCPFastOpenPassiveFail": "Fast Open cookies rejected",
    "TcpExtTCPFastOpenListenOverflow": "Fast Open SYNs refused: the listener's queue was full",
    "TcpExtTCPFastOpenCookieReqd": "Fast Open cookie requests received",
    "TcpExtTCPTimeouts": "retransmission timer expiries",
    "TcpExtTCPSynRetrans": "SYN and SYN-ACK retransmissions",
    "TcpExtTCPFastRetrans": "fast retransmissions",
    "TcpExtTCPLossProbes": "tail loss probes sent (RFC 8985)",
    "TcpExtDelayedACKs": "delayed ACKs sent by the timer",
    "TcpExtTCPOFOQueue": "segments queued out of order",
    "TcpExtTCPDSACKOldSent": "D-SACKs sent for data below RCV.NXT (RFC 2883)",
    "TcpExtTCPDSACKOfoSent": "D-SACKs sent for out-of-order data received twice (RFC 2883)",
    "TcpExtOutOfWindowIcmps": "ICMP errors quoting a sequence number outside the window",
}


class Counters:
    """Counters of one host; ``counters["TcpOutRsts"]`` reads 0 until counted.

    Segments in and out are counted on every packet, so they are plain
    attributes (``in_segs``, ``out_segs``); the rest live in a dictionary
    that holds every known name, so an unknown one raises ``KeyError``.
    """

    __slots__ = ("_values", "in_segs", "out_segs")

    def __init__(self) -> None:
        self._values: dict[str, int] = dict.fromkeys(KNOWN, 0)
        self.in_segs = 0
        self.out_segs = 0

    def inc(self, name: str, n: int = 1) -> None:
        self._values[name] += n  # KeyError for a name not in KNOWN

    def __getitem__(self, name: str) -> int:
        if name == "TcpInSegs":
            return self.in_segs
        if name == "TcpOutSegs":
            return self.out_segs
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def as_dict(self, all_names: bool = False) -> dict[str, int]:
        """The counted values, by name (``all_names``: zeros included)."""
        values = dict(self._values, TcpInSegs=self.in_segs, TcpOutSegs=self.out_segs)
        return {k: v for k, v in sorted(values.items()) if v or all_names}
