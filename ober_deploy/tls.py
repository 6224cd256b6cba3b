"""Check TLS bundles on the controller, so HAProxy never gets a certificate it would refuse or serve expired.

A bundle is what HAProxy's `crt` loads: certificate (+ chain) and private key in one PEM file. The checks
are the node's (ober_health.certs, the standard library): a key that does not match, an expired
certificate (a warning window belongs in monitoring and `ober doctor`, not in a deploy gate).
"""

from __future__ import annotations

from pathlib import Path

from ober_health.certs import inspect_bundle


def certificate_problem(path: Path) -> str:
    """Why `path` is not a usable HAProxy bundle ('' when it is): the node's own check (ober_health.certs),
    so the deploy and `ober doctor` judge a bundle alike."""
    try:
        if not path.is_file():
            return "no such file on the controller"
    except OSError as error:  # name too long: a line for the operator, not a traceback
        return f"not readable on the controller ({error.strerror or error})"
    problem = inspect_bundle(path, companion_key=False).problem
    if problem.startswith("not readable"):
        return problem.replace("not readable", "not readable on the controller", 1)
    return problem
