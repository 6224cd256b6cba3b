"""The health program's Prometheus metrics (text exposition format 0.0.4), rendered from its published state.

Why here and hand-written: the status endpoint already holds the state the decider published last, so a
scrape costs one render of that snapshot and asks HAProxy and ExaBGP nothing (cheap at 1000 VIPs); the format
is a few lines of text, less than a client library and its registry would bring onto every node.

What a VIP's `ober_vip_announced` says is what ExaBGP holds, not what this process meant: 1 only when the
route is announced, ExaBGP acknowledged the command (or its adj-rib-out was adopted) and its adj-rib-out held
the prefix at the last read (every second). Counters count from the process's start (a respawn resets them,
which Prometheus' rate() expects).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from ober_health.statefile import CheckTimes, State

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# seconds: a round is one HTTP GET and one `show stat` on loopback (ms), up to `timeout` for a hung HAProxy
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class DurationHistogram:
    """Check round durations: the decider observes each round; the state carries it (`checks`)."""

    def __init__(self) -> None:
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0
        self.last: float | None = None

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1  # `le`: a bound includes its value
        self.count += 1
        self.sum += seconds
        self.last = seconds

    def as_state(self) -> CheckTimes:
        return CheckTimes(count=self.count, sum=round(self.sum, 6), buckets=list(self.buckets), last=self.last)


def escape_label(value: str) -> str:
    """A label value as the format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Lines of one exposition: each family's HELP and TYPE once, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        text = ",".join(f'{key}="{escape_label(str(val))}"' for key, val in (labels or {}).items())
        self.lines.append(f"{name}{{{text}}} {format_value(value)}" if text else f"{name} {format_value(value)}")

    def encode(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


def vip_announced(vip: Mapping[str, object]) -> bool:
    """Announced as ExaBGP holds it: decided, acknowledged and in its adj-rib-out at the last read."""
    return vip.get("state") == "announced" and vip.get("acked") is True and bool(vip.get("held_by"))


def render(state: State, certificates: Iterable[tuple[str, float]] = ()) -> bytes:
    """The exposition of one published state, and the end dates (epoch) of the certificates by path."""
    out = Exposition()
    version = state.get("program", "").removeprefix("ober-health ").strip() or "unknown"
    out.family("ober_build_info", "gauge", "The running ober-health's version (always 1).")
    out.sample("ober_build_info", 1, {"version": version})
    out.family("ober_health_start_time_seconds", "gauge", "When this ober-health process started (epoch).")
    out.sample("ober_health_start_time_seconds", state["started_at"])
    out.family("ober_health_state_updated_timestamp_seconds", "gauge", "When the served state was published.")
    out.sample("ober_health_state_updated_timestamp_seconds", state["updated_at"])
    out.family("ober_health_loops_total", "counter", "Check rounds decided since start.")
    out.sample("ober_health_loops_total", state["loops"])
    out.family("ober_drained", "gauge", "1 while the node is drained (maintenance or stopping): every VIP down.")
    out.sample("ober_drained", int(state["drained"]))
    out.family("ober_exabgp_answering", "gauge", "0 when ExaBGP left a command unanswered past the hold time.")
    out.sample("ober_exabgp_answering", int(state["exabgp"]["answering"]))

    vips = state["vips"]
    out.family("ober_vip_announced", "gauge", "1 when ExaBGP acknowledged and holds the VIP's route.")
    for prefix, vip in vips.items():
        out.sample("ober_vip_announced", int(vip_announced(vip)), {"vip": prefix})
    out.family("ober_vip_transitions_total", "counter", "Announces and withdraws this process decided.")
    for prefix, vip in vips.items():
        out.sample("ober_vip_transitions_total", vip["announces"] + vip["withdraws"], {"vip": prefix})
    out.family("ober_check_failures_total", "counter", "Failed checks by VIP and cause (checks.FAILURE_CODES).")
    for prefix, vip in vips.items():
        for reason, count in sorted(vip.get("failures", {}).items()):
            out.sample("ober_check_failures_total", count, {"vip": prefix, "reason": reason})

    times = state.get("checks")
    out.family("ober_check_duration_seconds", "histogram", "How long a check round took (all VIPs at once).")
    if times:
        cumulative = 0
        for bound, count in zip((*DURATION_BUCKETS, math.inf), times["buckets"], strict=False):
            cumulative += count
            out.sample("ober_check_duration_seconds_bucket", cumulative, {"le": format_value(bound)})
        out.sample("ober_check_duration_seconds_sum", times["sum"])
        out.sample("ober_check_duration_seconds_count", times["count"])

    out.family("ober_bgp_session_up", "gauge", "1 while the BGP session with the peer is established.")
    for address, session in state["sessions"].items():
        asn = "" if session.get("asn") is None else str(session["asn"])
        out.sample("ober_bgp_session_up", int(session["state"] == "established"), {"peer": address, "asn": asn})

    expiry = "ober_certificate_expiry_timestamp_seconds"
    out.family(expiry, "gauge", "The end date (epoch) of each TLS certificate the deploy gave HAProxy.")
    for path, not_after in certificates:
        out.sample(expiry, not_after, {"path": path})
    return out.encode()


def certificate_expiries(directory: str) -> list[tuple[str, float]]:
    """(path, end date) of each certificate in `directory`: the public copies the deploy writes next to the
    bundles HAProxy loads (those are root's alone; this process runs unprivileged). Unreadable ones are left
    out: `ober doctor` names them."""
    from ober_health.certs import not_after

    try:
        paths = sorted(p for p in Path(directory).iterdir() if p.is_file())
    except OSError:
        return []
    found = []
    for path in paths:
        end = not_after(path)
        if end is not None:
            found.append((str(path), end))
    return found
