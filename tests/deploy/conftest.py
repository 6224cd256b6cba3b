"""Fixtures of the deploy tests: TLS bundles made once per run by `openssl`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.support import make_bundle, make_expired_bundle, make_mismatched_bundle


@dataclass(frozen=True)
class Bundles:
    good: Path  # certificate + its key, valid for a day
    mismatched: Path  # good's certificate with another key
    expired: Path  # certificate + its key, expired in 2020


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    directory = tmp_path_factory.mktemp("tls")
    good = make_bundle(directory, "s3.example.org")
    return Bundles(
        good=good,
        mismatched=make_mismatched_bundle(directory, "mismatched", good),
        expired=make_expired_bundle(directory, "expired"),
    )
