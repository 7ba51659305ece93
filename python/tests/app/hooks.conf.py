# gunicorn settings for the tests: the package's ready-made hooks, configured
# by GSTATS_STATS_ADDR and GSTATS_PREFIX in the environment.
from gstats.gunicorn import post_fork, post_request, pre_request, worker_exit  # noqa: F401
