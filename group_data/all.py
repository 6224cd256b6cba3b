"""Group data of every ober node: put here what all of a site's nodes share (an inventory's host or group
data, or `--data key=value`, overrides it).

The defaults are not repeated here: each key's default and meaning are in one table, ober_deploy/keys.py
(`python -m ober_deploy.keys` prints it; the README's key table is that output), and what the node itself
defaults (hold time, health timers and their ranges) is the node model's, ober_health/config.py. Keys
without a default (`ober_local_asn`, `ober_peers`, `ober_vips`, `ober_backends`) describe a site and must
come from the inventory: see inventories/prod.py for a documented example.
"""
