"""Engine settings, including the experiment switches that remove a mechanism."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TcpConfig:
    """Per-host TCP settings.  Defaults follow the RFCs, or Linux where noted."""

    mss: int = 1460                  #: our MSS, advertised in SYN (RFC 9293 3.7.1)
    default_mss: int = 536           #: peer MSS when it sends none (RFC 9293 3.7.1)
    rcv_buf: int = 65535             #: receive buffer (the largest window we offer)
    snd_buf: int = 256 * 1024        #: send buffer
    window_scale: bool = True        #: offer window scaling (RFC 7323) when rcv_buf > 65535
    msl: float = 30.0                #: maximum segment lifetime; TIME-WAIT = 2 * MSL = Linux's 60 s
    time_wait: float | None = None   #: experiment switch: TIME-WAIT length (None = 2*MSL, 0 = none)
    rto_initial: float = 1.0         #: RFC 6298 (2.1)
    rto_min: float = 1.0             #: RFC 6298 (2.4); Linux uses 0.2
    rto_max: float = 60.0            #: RFC 6298 (2.5)
    syn_retries: int = 6             #: SYN retransmissions before ETIMEDOUT (Linux tcp_syn_retries)
    synack_retries: int = 5          #: SYN-ACK retransmissions (Linux tcp_synack_retries)
    data_retries: int = 15           #: data/FIN retransmissions (Linux tcp_retries2)
    delayed_ack: float = 0.04        #: delayed-ACK timeout, 0 disables (RFC 9293 3.8.6.3: < 0.5 s)
    nagle: bool = True               #: Nagle's algorithm (RFC 9293 3.7.4); TCP_NODELAY clears it
    initial_cwnd_segments: int = 10  #: RFC 6928
    fin_wait_2_timeout: float = 60.0  #: orphaned FIN-WAIT-2 (Linux tcp_fin_timeout); 0 = never
    rfc5961: bool = True             #: blind-attack mitigations (challenge ACKs)
    challenge_ack_limit: int = 1000  #: challenge ACKs per second per host (Linux default)
    oow_ack_interval: float = 0.5    #: min gap between ACKs to bare out-of-window segments (Linux)
    rfc1337: bool = True             #: ignore RST in TIME-WAIT (RFC 1337)
    time_wait_reopen: bool = True    #: a SYN beyond RCV.NXT reopens a TIME-WAIT 4-tuple (RFC 6191)
    drop_synfin: bool = False        #: drop SYN+FIN segments (FreeBSD net.inet.tcp.drop_synfin)
    syn_cookies: str = "auto"        #: "never" | "auto" (when the SYN queue is full) | "always"
    two_way_handshake: bool = False  #: experiment switch: passive side ESTABLISHED after SYN-ACK
    ephemeral_low: int = 32768       #: Linux ip_local_port_range
    ephemeral_high: int = 60999

    @property
    def time_wait_length(self) -> float:
        return 2 * self.msl if self.time_wait is None else self.time_wait
