"""A deploy that renders an HAProxy config `haproxy -c` rejects, through the production stage-validate-swap
operation (ober_deploy.staged.template): used by the fleet test that checks the live file and HAProxy stay
untouched, and that the next regular deploy then changes nothing."""

from ober_deploy import staged
from ober_deploy.plan import fleet_settings
from ober_health.paths import PATHS

fleet_settings()
staged.template(
    name="HAProxy config",
    src="tests/fleet/broken_haproxy.cfg.j2",
    dest=PATHS.haproxy_config,
    check="haproxy -c -f {staged}",
    managed="test",
)
