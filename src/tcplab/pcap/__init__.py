"""pcap in and out: write a trace as a capture file, read a capture as a trace.

* :func:`tcplab.pcap.writer.write_pcap` writes the segments of a trace as a
  classic pcap file (LINKTYPE_RAW), readable by Wireshark and tcpdump;
* :func:`tcplab.pcap.reader.read_capture` reads pcap or pcapng (Ethernet, raw
  IP, Linux cooked SLL/SLL2, BSD loopback) and returns trace events, with both
  endpoints' states inferred by :mod:`tcplab.pcap.follow`.
"""
