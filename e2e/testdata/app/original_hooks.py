"""Gunicorn configuration whose hooks report to gstats exactly as the
original gstats client did on the wire.

Every request sends two two-frame messages to the collector's PULL socket:

    pre_request:   [prefix, b""]          a request started
    post_request:  [prefix, b"%i" % ms]   it finished after ms milliseconds

The duration is formatted with %i, so it is an integer number of
milliseconds and a request that took under 1 ms is sent as b"0".

Settings come from the environment:

    GUNI_BIND           address gunicorn listens on, e.g. 127.0.0.1:8000
    GUNI_WORKER_CLASS   sync (default) or gthread
    GUNI_WORKERS        number of worker processes [2]
    GUNI_THREADS        threads per worker (gthread) [1]
    GSTATS_STATS_ADDR   the collector's stats address, e.g. tcp://127.0.0.1:2345
    GSTATS_PREFIX       the prefix of the messages (empty means "default")
"""

import os
import threading
import time

import zmq

bind = os.environ["GUNI_BIND"]
worker_class = os.environ.get("GUNI_WORKER_CLASS", "sync")
workers = int(os.environ.get("GUNI_WORKERS", "2"))
threads = int(os.environ.get("GUNI_THREADS", "1"))
graceful_timeout = 5
errorlog = "-"
loglevel = "info"

_STATS_ADDR = os.environ["GSTATS_STATS_ADDR"]
_PREFIX = os.environ.get("GSTATS_PREFIX", "").encode("utf-8")

# One PUSH socket per worker process, created lazily after the fork and
# keyed on the process id. zmq sockets are not thread-safe, so gthread
# workers share it under a lock.
_lock = threading.Lock()
_pid = None
_sock = None


def _socket():
    global _pid, _sock
    if _pid != os.getpid():
        sock = zmq.Context().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(_STATS_ADDR)
        _pid, _sock = os.getpid(), sock
    return _sock


def _send(frames):
    try:
        with _lock:
            _socket().send_multipart(frames, flags=zmq.NOBLOCK)
    except zmq.Again:
        pass  # collector down or queue full: drop, never block a request


def pre_request(worker, req):
    # The start time lives on the request object, so concurrent requests
    # in one worker (threads) are timed independently.
    req.gstats_started = time.perf_counter()
    _send([_PREFIX, b""])


def post_request(worker, req, environ, resp):
    started = getattr(req, "gstats_started", None)
    if started is None:
        return  # pre_request did not run for this request
    ms = (time.perf_counter() - started) * 1000.0
    _send([_PREFIX, b"%i" % ms])
