"""The options of a SYN and what both ends agree on (RFC 9293 3.7.1, RFC 7323 2).

:func:`syn_options` is what we put in our SYN; :func:`negotiate` turns the
peer's SYN (or SYN-ACK) into the :class:`Negotiated` values both ends use for
the life of the connection.  One place for every SYN option: MSS, window
scale, SACK-permitted (RFC 2018), timestamps (RFC 7323) and the Fast Open
cookie (RFC 7413), in the order Linux writes them (``tcp_options_write``):
MSS; SACK-permitted and timestamps (NOP, NOP, TS when SACK is not offered;
NOP, NOP, SACK-permitted when timestamps are not); NOP, window scale; the
Fast Open option, padded with two NOPs when its length is 2 modulo 4.
"""

from __future__ import annotations

from typing import Final

from tcplab.engine.config import TcpConfig
from tcplab.wire.tcp import (
    FastOpen,
    Mss,
    Nop,
    SackPermitted,
    TcpOption,
    TcpSegment,
    Timestamps,
    WindowScale,
)

MAX_WINDOW: Final = 0xFFFF
MIN_MSS: Final = 64  #: the smallest MSS accepted from a peer (Linux: TCP_MIN_SND_MSS is 48)


def our_wscale(config: TcpConfig, rcv_buf: int | None = None) -> int | None:
    """The window scale we offer (RFC 7323 2.3) for a receive buffer of ``rcv_buf``
    (default the host's), or None when we offer none."""
    buf = config.rcv_buf if rcv_buf is None else rcv_buf
    if not (config.window_scale and buf > MAX_WINDOW):
        return None
    shift = 0
    while (buf >> shift) > MAX_WINDOW and shift < 14:
        shift += 1
    return shift


def syn_options(config: TcpConfig, *, synack: bool = False, peer_wscale: bool = True,
                peer_sack: bool = True, ts: tuple[int, int] | None = None,
                mss: int | None = None, fastopen: FastOpen | None = None,
                rcv_buf: int | None = None) -> tuple[TcpOption, ...]:
    """The options of our SYN, or of our SYN-ACK (which carries Window Scale,
    Timestamps and SACK-permitted only if the peer's SYN did, RFC 7323 2.2 and 3.2,
    RFC 2018 2).  ``ts``: (TSval, TSecr) when timestamps are offered; ``mss``: the
    MSS to advertise (TCP_MAXSEG; default ``config.mss``); ``fastopen``: the Fast
    Open option (a cookie, or a cookie request).  The order is Linux's."""
    opts: list[TcpOption] = [Mss(config.mss if mss is None else mss)]
    sack = config.sack and (not synack or peer_sack)
    if ts is not None:
        if sack:
            opts += (SackPermitted(), Timestamps(ts[0], ts[1]))
        else:
            opts += (Nop(), Nop(), Timestamps(ts[0], ts[1]))
    elif sack:
        opts += (Nop(), Nop(), SackPermitted())
    shift = our_wscale(config, rcv_buf)
    if shift is not None and (not synack or peer_wscale):
        opts += (Nop(), WindowScale(shift))  # NOP aligns it, as Linux sends it
    if fastopen is not None:
        opts.append(fastopen)
        if fastopen.length % 4 == 2:
            opts += (Nop(), Nop())
    return tuple(opts)


class Negotiated:
    """What the two SYNs settled: the peer's MSS and both window scales."""

    __slots__ = ("rcv_wscale", "sack_ok", "snd_mss", "snd_wscale", "ts_ok")

    def __init__(self, snd_mss: int, snd_wscale: int, rcv_wscale: int,
                 ts_ok: bool = False, sack_ok: bool = False) -> None:
        self.snd_mss = snd_mss        #: the largest segment we send (RFC 9293 3.7.1 SMSS)
        self.snd_wscale = snd_wscale  #: shift applied to the peer's window fields
        self.rcv_wscale = rcv_wscale  #: shift applied to ours
        self.ts_ok = ts_ok            #: both SYNs carried timestamps (RFC 7323 3.2)
        self.sack_ok = sack_ok        #: both SYNs carried SACK-permitted (RFC 2018 2)


def negotiate(peer_syn: TcpSegment, config: TcpConfig, we_offer_wscale: bool,
              our_mss: int | None = None, rcv_buf: int | None = None) -> Negotiated:
    """MSS (RFC 9293 3.7.1: the peer's, else the default, never above ours), window
    scale (RFC 7323 2.2), timestamps (3.2) and SACK (RFC 2018 2): each used only when
    both SYNs carried it.  ``our_mss``: a per-socket MSS (TCP_MAXSEG)."""
    mss = peer_syn.mss
    snd_mss = min(mss if mss is not None else config.default_mss,
                  config.mss if our_mss is None else our_mss)
    if snd_mss < MIN_MSS:
        snd_mss = MIN_MSS
    ws = peer_syn.wscale
    ours = our_wscale(config, rcv_buf)
    ts_ok = config.timestamps and peer_syn.timestamps is not None
    sack_ok = config.sack and peer_syn.sack_permitted
    if ws is not None and we_offer_wscale and ours is not None:
        return Negotiated(snd_mss, min(ws, 14), ours, ts_ok, sack_ok)
    return Negotiated(snd_mss, 0, 0, ts_ok, sack_ok)
