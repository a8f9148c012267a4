"""Lessons on the real Linux kernel: ``--on linux`` and ``tcplab compare``.

Two network namespaces, ``client`` (192.0.2.1) and ``server`` (192.0.2.2), each with a
TUN device; tcplab itself is the wire between them (:mod:`~tcplab.onlinux.middlebox`):
it reads every packet one kernel sends, names the segment by its role in the life
(:class:`tcplab.faults.LifeRoles`), drops, delays or duplicates exactly the segments
``--drop``/``--delay``/``--dup`` name, and writes the rest to the other kernel after the
lesson's one-way delay. The lesson's socket calls are made by real kernel sockets, in a
thread inside each namespace (:mod:`~tcplab.onlinux.sides`, the scripts in
:mod:`~tcplab.onlinux.lessons`). The trace comes from the machinery of ``tcplab
watch``: the kernel's tracepoints for the states, a packet capture in each namespace
for the segments (leaving one end, arriving at the other), sock_diag for the timewait
mini-sockets and the TIME-WAIT timer (:mod:`~tcplab.onlinux.run`).
:mod:`~tcplab.onlinux.compare` lays an engine run and a Linux run side by side.

docs/kernel.md ("The same lesson on Linux") explains the method.
"""
