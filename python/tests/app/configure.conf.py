# gunicorn settings for the tests: the hooks configured by one call, with a
# prefix chosen per request.
import os

import gstats.gunicorn
from gstats.gunicorn import post_fork, post_request, pre_request, worker_exit  # noqa: F401


def _prefix(req):
    return "slow" if req.path.startswith("/sleep") else b"fast"


gstats.gunicorn.configure(address=os.environ["TEST_STATS_ADDR"], prefix="unused",
                          prefix_func=_prefix)
