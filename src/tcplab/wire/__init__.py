"""Wire formats: bytes <-> checked representations (RFC 9293 3.1, RFC 791, RFC 8200).

Everything malformed raises :class:`WireError` (with ``.reason``); nothing else
escapes the parsers.
"""

from tcplab.wire.checksum import internet_checksum, tcp_checksum, verify_tcp_checksum
from tcplab.wire.errors import WireError
from tcplab.wire.ip import (
    IpPacket,
    emit_ip_tcp,
    emit_ipv4,
    emit_ipv6,
    parse_ip,
    parse_ip_tcp,
)
from tcplab.wire.seq import (
    seq_add,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_max,
    seq_min,
    seq_sub,
)
from tcplab.wire.tcp import (
    ACK,
    CWR,
    ECE,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    Eol,
    Mss,
    Nop,
    Sack,
    SackPermitted,
    TcpOption,
    TcpSegment,
    Timestamps,
    UnknownOption,
    WindowScale,
    emit_options,
    emit_tcp,
    flags_str,
    parse_flags,
    parse_options,
    parse_tcp,
)

__all__ = [
    "ACK", "CWR", "ECE", "FIN", "PSH", "RST", "SYN", "URG",
    "Eol", "IpPacket", "Mss", "Nop", "Sack", "SackPermitted", "TcpOption",
    "TcpSegment", "Timestamps", "UnknownOption", "WindowScale", "WireError",
    "emit_ip_tcp", "emit_ipv4", "emit_ipv6", "emit_options", "emit_tcp", "flags_str",
    "internet_checksum", "parse_flags", "parse_ip", "parse_ip_tcp", "parse_options",
    "parse_tcp", "seq_add", "seq_ge", "seq_gt", "seq_in_window", "seq_le", "seq_lt", "seq_max",
    "seq_min", "seq_sub", "tcp_checksum", "verify_tcp_checksum",
]
