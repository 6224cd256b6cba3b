"""ober_health: the health program that decides a node's BGP routes, and the node-local operator CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    # the installed distribution's version: the deploy builds it as `0.1.0+<hash of the source>`
    __version__ = version("ober_health")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
