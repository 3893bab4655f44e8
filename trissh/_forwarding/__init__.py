"""Port forwarding: local, remote and dynamic (SOCKS) forwards over SSH channels."""
