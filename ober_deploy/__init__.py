"""Controller side of ober: turn inventory data into validated node settings, and ship what nodes need.

Nothing here runs on a node. `deploy.py` and `tasks/` use it; the unit tests import it directly.
"""
