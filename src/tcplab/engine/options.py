"""The options of a SYN and what both ends agree on (RFC 9293 3.7.1, RFC 7323 2).

:func:`syn_options` is what we put in our SYN; :func:`negotiate` turns the
peer's SYN (or SYN-ACK) into the :class:`Negotiated` values both ends use for
the life of the connection.  One place for every SYN option: MSS and window
scale today; SACK-permitted and timestamps go here too.
"""

from __future__ import annotations

from typing import Final

from tcplab.engine.config import TcpConfig
from tcplab.wire.tcp import Mss, Nop, TcpOption, TcpSegment, Timestamps, WindowScale

MAX_WINDOW: Final = 0xFFFF
MIN_MSS: Final = 64  #: the smallest MSS accepted from a peer (Linux: TCP_MIN_SND_MSS is 48)


def our_wscale(config: TcpConfig) -> int | None:
    """The window scale we offer (RFC 7323 2.3), or None when we offer none."""
    if not (config.window_scale and config.rcv_buf > MAX_WINDOW):
        return None
    shift = 0
    while (config.rcv_buf >> shift) > MAX_WINDOW and shift < 14:
        shift += 1
    return shift


def syn_options(config: TcpConfig, *, synack: bool = False, peer_wscale: bool = True,
                ts: tuple[int, int] | None = None) -> tuple[TcpOption, ...]:
    """The options of our SYN, or of our SYN-ACK (which carries Window Scale and
    Timestamps only if the peer's SYN did, RFC 7323 2.2 and 3.2).  ``ts``: (TSval,
    TSecr) when timestamps are offered.  The order is Linux's: MSS, NOP, NOP, TS,
    NOP, WS."""
    opts: list[TcpOption] = [Mss(config.mss)]
    if ts is not None:
        opts += (Nop(), Nop(), Timestamps(ts[0], ts[1]))
    shift = our_wscale(config)
    if shift is not None and (not synack or peer_wscale):
        opts += (Nop(), WindowScale(shift))  # NOP aligns it, as Linux sends it
    return tuple(opts)


class Negotiated:
    """What the two SYNs settled: the peer's MSS and both window scales."""

    __slots__ = ("rcv_wscale", "snd_mss", "snd_wscale", "ts_ok")

    def __init__(self, snd_mss: int, snd_wscale: int, rcv_wscale: int,
                 ts_ok: bool = False) -> None:
        self.snd_mss = snd_mss        #: the largest segment we send (RFC 9293 3.7.1 SMSS)
        self.snd_wscale = snd_wscale  #: shift applied to the peer's window fields
        self.rcv_wscale = rcv_wscale  #: shift applied to ours
        self.ts_ok = ts_ok            #: both SYNs carried timestamps (RFC 7323 3.2)


def negotiate(peer_syn: TcpSegment, config: TcpConfig, we_offer_wscale: bool) -> Negotiated:
    """MSS (RFC 9293 3.7.1: the peer's, else the default, never above ours), window
    scale (RFC 7323 2.2) and timestamps (3.2): each used only when both SYNs carried it."""
    mss = peer_syn.mss
    snd_mss = min(mss if mss is not None else config.default_mss, config.mss)
    if snd_mss < MIN_MSS:
        snd_mss = MIN_MSS
    ws = peer_syn.wscale
    ours = our_wscale(config)
    ts_ok = config.timestamps and peer_syn.timestamps is not None
    if ws is not None and we_offer_wscale and ours is not None:
        return Negotiated(snd_mss, min(ws, 14), ours, ts_ok)
    return Negotiated(snd_mss, 0, 0, ts_ok)
