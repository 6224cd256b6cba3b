"""A deploy that renders an HAProxy config `haproxy -c` rejects, through the production stage-validate-swap
path (ober_deploy.staged): used by the fleet test that checks the live file and HAProxy stay untouched."""

from ober_deploy.paths import PATHS
from ober_deploy.plan import fleet_settings
from ober_deploy.staged import staged_template

fleet_settings()
staged_template(
    "HAProxy config",
    "tests/fleet/broken_haproxy.cfg.j2",
    PATHS.haproxy_config,
    check="haproxy -c -f {staged}",
    managed="test",
)
