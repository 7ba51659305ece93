"""gunicorn settings with gstats hooks written directly against pyzmq.

Every request sends a start message ([prefix, b""]) and a finish message
([prefix, b"<ms>", b"<status>"]) to gstats-collectd. One PUSH socket per
worker process, connected right after fork (so it is connected before the
worker's first request); sends never block: with the collector down,
messages are dropped, never queued in the application.
"""
import os
import threading
import time

import zmq

bind = os.environ.get("GUNI_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNI_WORKERS", "2"))
worker_class = os.environ.get("GUNI_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNI_THREADS", "1"))
accesslog = None

_ADDR = os.environ.get("GSTATS_STATS_ADDR", "tcp://127.0.0.2:2345")
_PREFIX = os.environ.get("GSTATS_PREFIX", "demo").encode()
_lock = threading.Lock()
_state = {"pid": None, "sock": None}


def _socket():
    if _state["pid"] != os.getpid():
        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 10000)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.connect(_ADDR)
        _state.update(pid=os.getpid(), sock=sock)
    return _state["sock"]


def _send(frames):
    try:
        with _lock:
            _socket().send_multipart(frames, flags=zmq.NOBLOCK)
    except zmq.ZMQError:
        pass  # collector down or queue full: drop, never hurt the request


def post_fork(server, worker):
    # Connect before the worker serves: with IMMEDIATE set, a message sent
    # before the connection is up would be dropped.
    with _lock:
        _socket()


def pre_request(worker, req):
    req._gstats_t0 = time.perf_counter()
    _send([_PREFIX, b""])


def post_request(worker, req, environ, resp):
    t0 = getattr(req, "_gstats_t0", None)
    if t0 is None:
        return
    ms = (time.perf_counter() - t0) * 1000.0
    status = getattr(resp, "status_code", None) if resp is not None else None
    frames = [_PREFIX, b"%.3f" % ms]
    if isinstance(status, int):
        frames.append(b"%d" % status)
    _send(frames)
