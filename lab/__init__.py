"""The ober lab: real HAProxy, ExaBGP and BGP routers in network namespaces on one machine."""
