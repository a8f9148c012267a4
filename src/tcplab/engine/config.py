"""Engine settings, including the experiment switches that remove a mechanism.

The defaults are the ``rfc`` profile: RFC 9293 and its companions, where the
RFCs leave a choice open the choice tcplab has always made.  The ``linux``
profile (:mod:`tcplab.engine.profiles`) sets the same fields to Linux 6.x's
defaults, by their sysctl names; ``docs/linux.md`` lists them with sources.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(slots=True)
class TcpConfig:
    """Per-host TCP settings.  Defaults follow the RFCs, or Linux where noted."""

    # ---- segments and buffers
    mss: int = 1460                  #: our MSS, advertised in SYN (RFC 9293 3.7.1)
    default_mss: int = 536           #: peer MSS when it sends none (RFC 9293 3.7.1)
    rcv_buf: int = 65535             #: receive buffer (the largest window we offer)
    snd_buf: int = 256 * 1024        #: send buffer
    window_scale: bool = True        #: offer window scaling (RFC 7323) when rcv_buf > 65535
    linux_window: bool = False       #: offer at most rcv_ssthresh, grown per segment (Linux)
    timestamps: bool = False         #: offer RFC 7323 timestamps (Linux tcp_timestamps)
    sack: bool = False               #: offer SACK-permitted, send SACK blocks (RFC 2018; tcp_sack)
    dsack: bool = False              #: report duplicates with D-SACK (RFC 2883; tcp_dsack)
    ecn: int = 0                     #: ECN setup (RFC 3168 6.1.1; tcp_ecn): 1 ask and accept, 2 accept
    # ---- handshake
    syn_retries: int = 6             #: SYN retransmissions before ETIMEDOUT (Linux tcp_syn_retries)
    syn_linear_timeouts: int = 0     #: first SYN timeouts without back-off (Linux 6.x: 4)
    synack_retries: int = 5          #: SYN-ACK retransmissions (Linux tcp_synack_retries)
    # ---- retransmission (RFC 6298)
    rto_initial: float = 1.0         #: RFC 6298 (2.1)
    rto_min: float = 1.0             #: RFC 6298 (2.4); Linux 0.2 (tcp_rto_min_us)
    rto_max: float = 60.0            #: RFC 6298 (2.5); Linux 120 (tcp_rto_max_ms)
    linux_rto: bool = False          #: RTO = SRTT + max(4*RTTVAR, rto_min), as Linux computes it
    data_retries: int = 15           #: data/FIN retransmissions (Linux tcp_retries2)
    orphan_retries: int = 0          #: after close() (Linux tcp_orphan_retries; 0: 8 on Linux)
    retries_by_time: bool = False    #: Linux: retries2 is a time budget (tcp_model_timeout)
    user_timeout: float = 0.0        #: default TCP_USER_TIMEOUT (s); 0 = none (RFC 9293 3.8.3)
    active_rst_ack: bool = False     #: RSTs we send on abort carry ACK (Linux tcp_send_active_reset)
    syn_data_queued: bool = True     #: keep data of a SYN until ESTABLISHED (RFC 9293); Linux drops it
    #: after an unacceptable ACK in SYN-SENT (answered with RST), resend the SYN this soon if
    #: none was resent yet (Linux tcp_rcv_synsent_state_process: TCP_TIMEOUT_MIN); None: the RTO
    synsent_rst_rearm: float | None = None
    #: the ISN clock's tick (RFC 9293 3.4.1: 4 µs; Linux secure_tcp_seq: ns >> 6, 64 ns)
    isn_tick_ns: int = 4000
    #: a SYN that reopens a TIME-WAIT 4-tuple starts a connection whose ISN is the old
    #: SND.NXT + 65537 (Linux), not a fresh one from the ISN clock (RFC 6191 needs only "higher")
    tw_reopen_isn: bool = False
    #: a SYN failing PAWS in a synchronized state gets a challenge ACK (Linux
    #: tcp_validate_incoming: syn_challenge), not a rate-limited duplicate ACK (RFC 7323 5.3)
    paws_syn_challenge: bool = False
    # ---- acknowledgments
    delayed_ack: float = 0.04        #: delayed-ACK timeout, 0 disables (RFC 9293 3.8.6.3: < 0.5 s)
    quickack: bool = False           #: Linux's quick-ACK and ping-pong modes (tcp_in_quickack_mode)
    nagle: bool = True               #: Nagle's algorithm (RFC 9293 3.7.4); TCP_NODELAY clears it
    linux_sender: bool = False       #: Linux's sender: cwnd in packets, RACK, PRR (tcp_input.c)
    rack: bool = False               #: RACK loss detection (RFC 8985; Linux tcp_recovery bit 1)
    tlp: bool = False                #: tail loss probes (RFC 8985 7; Linux tcp_early_retrans 3)
    initial_cwnd_segments: int = 10  #: RFC 6928
    #: slow start grows cwnd per ACK by the bytes it acknowledges, at most this many MSS
    #: (RFC 5681 3.1: 1; RFC 3465 ABC allows 2); 0: no limit, as Linux, which grows by
    #: every packet an ACK delivers (tcp_slow_start), so a receiver's stretch ACKs (with
    #: GRO, one ACK per 64 KB) do not slow it.  The rfc sender only (linux_sender counts
    #: packets anyway)
    abc_limit: int = 1
    iw_rfc6928: bool = True          #: IW = min(10*SMSS, max(2*SMSS, 14600)); False: 10*SMSS (Linux)
    # ---- closing and TIME-WAIT
    fin_wait_2_timeout: float = 60.0  #: orphaned FIN-WAIT-2 (Linux tcp_fin_timeout); 0 = never
    msl: float = 30.0                #: maximum segment lifetime; TIME-WAIT = 2 * MSL = Linux's 60 s
    time_wait: float | None = None   #: TIME-WAIT length (None = 2*MSL, 0 = none: experiment)
    rfc1337: bool = True             #: ignore RST in TIME-WAIT (RFC 1337)
    time_wait_reopen: bool = True    #: a SYN beyond RCV.NXT reopens a TIME-WAIT 4-tuple (RFC 6191)
    tw_reuse: int = 0                #: connect() may reuse a TIME-WAIT 4-tuple (Linux tcp_tw_reuse)
    tw_reuse_delay: float = 1.0      #: ... once its last timestamp is this old (tcp_tw_reuse_delay)
    max_tw_buckets: int | None = None  #: TIME-WAIT entries at most (Linux tcp_max_tw_buckets)
    # ---- keep-alive (RFC 9293 3.8.4)
    keepalive_time: float = 7200.0   #: idle time before the first probe (tcp_keepalive_time)
    keepalive_intvl: float = 75.0    #: between probes (tcp_keepalive_intvl)
    keepalive_probes: int = 9        #: unanswered probes before ETIMEDOUT (tcp_keepalive_probes)
    # ---- listeners
    somaxconn: int | None = None     #: accept queue at most this (Linux net.core.somaxconn)
    max_syn_backlog: int | None = None  #: SYN queue at most this (Linux tcp_max_syn_backlog)
    accept_backlog_plus_one: bool = False  #: Linux accepts backlog + 1 (sk_acceptq_is_full)
    syn_cookies: str = "auto"        #: "never" | "auto" (when the SYN queue is full) | "always"
    abort_on_overflow: bool = False  #: RST the ACK that finds the accept queue full
    fastopen: int = 0                #: Linux tcp_fastopen bits: 1 client, 2 server, 0x200 no cookie
    fastopen_key: str = ""           #: Linux tcp_fastopen_key ("%08x-%08x-%08x-%08x"); "" = random
    # ---- blind attacks (RFC 5961) and odd segments
    rfc5961: bool = True             #: blind-attack mitigations (challenge ACKs)
    challenge_ack_limit: int = 1000  #: challenge ACKs per second per host
    oow_ack_interval: float = 0.5    #: min gap between ACKs to bare out-of-window segments (Linux)
    drop_synfin: bool = False        #: drop SYN+FIN segments (FreeBSD net.inet.tcp.drop_synfin)
    # ---- experiment switches and ports
    two_way_handshake: bool = False  #: experiment switch: passive side ESTABLISHED after SYN-ACK
    ephemeral_low: int = 32768       #: Linux ip_local_port_range
    ephemeral_high: int = 60999
    profile: str = "rfc"             #: the name of the preset these values came from

    @property
    def time_wait_length(self) -> float:
        return 2 * self.msl if self.time_wait is None else self.time_wait

    def copy(self, **changes: object) -> TcpConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def initial_window(self, smss: int) -> int:
        """The initial congestion window in bytes for a sender MSS ``smss`` (RFC 6928, RFC
        5681 3.1; Linux: ``initial_cwnd_segments`` segments whatever the MSS)."""
        n = self.initial_cwnd_segments * smss
        if self.iw_rfc6928:
            return min(n, max(2 * smss, 14600))
        return n
