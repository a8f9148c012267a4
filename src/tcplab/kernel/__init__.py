"""The operating system's own TCP: reading its sockets (sock_diag netlink, /proc)."""
