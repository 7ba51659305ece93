"""gunicorn settings with the gstats hooks.

Every request sends a start message ([prefix, b""]) and a finish message
([prefix, b"<ms>", b"<status>"]) to gstats-collectd, through the gstats
Python package (python/ in this repository: `pip install ./python`, or
PYTHONPATH=python/src as scripts/demo.sh does). The hooks never block and
never raise: with the collector down, messages are dropped and counted.

Settings come from the environment:

    GUNI_BIND           address gunicorn listens on [127.0.0.1:8000]
    GUNI_WORKER_CLASS   sync (default), gthread or gevent
    GUNI_WORKERS        worker processes [2]
    GUNI_THREADS        threads per worker (gthread) [1]
    GSTATS_STATS_ADDR   the collector's stats address [tcp://127.0.0.2:2345]
    GSTATS_PREFIX       the prefix of the messages [demo]
"""
import os

os.environ.setdefault("GSTATS_PREFIX", "demo")

from gstats.gunicorn import post_fork, post_request, pre_request, worker_exit  # noqa: E402,F401

bind = os.environ.get("GUNI_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNI_WORKERS", "2"))
worker_class = os.environ.get("GUNI_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNI_THREADS", "1"))
accesslog = None
