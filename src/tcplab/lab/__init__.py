"""Practice labs on the kernel's own TCP: TIME-WAIT and SO_REUSEADDR, close storms."""
