"""When retransmissions give up (RFC 9293 3.8.3, RFC 1122 4.2.3.5), by count or, as Linux
does, by time.

RFC behaviour: a connection is dropped after ``R2`` retransmissions of the
same segment; tcplab counts them (``tcp_retries2`` and friends, as numbers).

Linux (``net/ipv4/tcp_timer.c``):

* SYN-SENT: ``tcp_syn_retries + tcp_syn_linear_timeouts`` retransmissions, the
  first ``tcp_syn_linear_timeouts`` without back-off (since 6.5), or, first,
  the time ``tcp_model_timeout(tcp_syn_retries, 1 s)``: 6 retries give up
  after 131 s with 11 SYNs; with ``tcp_syn_retries=2``, after 7 s with 6;
* SYN-RECEIVED (the listener's request): ``tcp_synack_retries`` SYN-ACKs;
* other states: a time budget, ``tcp_model_timeout(tcp_retries2, 200 ms)``,
  measured from the first transmission of the oldest unacknowledged
  segment: 15 gives 924.6 s whatever the RTT; an orphan (after close())
  uses ``tcp_orphan_retries`` (0 means 8: 102.2 s);
* TCP_USER_TIMEOUT replaces the time budget.
"""

from __future__ import annotations

RTO_MAX_LINUX = 120.0  #: TCP_RTO_MAX: tcp_model_timeout is defined with it


def model_timeout(boundary: int, rto_base: float, rto_max: float = RTO_MAX_LINUX) -> float:
    """Linux's tcp_model_timeout(): how long ``boundary`` exponentially backed-off
    retransmissions starting at ``rto_base`` take, each capped at ``rto_max``."""
    thresh = 0
    while (rto_base * (2 << thresh)) <= rto_max:  # ilog2(rto_max / rto_base)
        thresh += 1
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (boundary - thresh) * rto_max


def orphan_retries(configured: int, linux: bool, data_retries: int, alive: bool) -> int:
    """tcp_orphan_retries(): 0 means 8 on Linux (when the RTO is below its maximum);
    in the rfc profile an orphan retries like any connection."""
    if configured:
        return configured
    if linux:
        return 8 if alive else 0
    return data_retries
