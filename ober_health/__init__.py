"""ober_health: the health program that decides a node's BGP routes, and the node-local operator CLI."""

__version__ = "0.1.0"
