"""gstats client: report request timings to gstats-collectd over ZeroMQ.

The two functions existing gunicorn configuration files call::

    from gstats import start_request, end_request

    def pre_request(worker, req):
        start_request(req, collect=True, collector_addr="tcp://127.0.0.2:2345", prefix=b"my_app")

    def post_request(worker, req, environ, resp):
        end_request(req, collector_addr="tcp://127.0.0.2:2345", prefix=b"my_app")

For new configurations, ``gstats.gunicorn`` has ready-made hooks.

Sending never blocks and never raises: a message the collector cannot take
at once (collector down, restarting or slow) is dropped and counted, see
``client_stats()``.
"""

import threading
import time

from . import _client
from ._client import DEFAULT_COLLECTOR_ADDR, get_context

__all__ = [
    "DEFAULT_COLLECTOR_ADDR",
    "DEFAULT_PREFIX",
    "client_stats",
    "close",
    "context_factory",
    "end_request",
    "flush",
    "get_context",
    "requests",
    "start_request",
]

__version__ = "0.7.0"

#: The prefix the original client used when none was given.
DEFAULT_PREFIX = "my_app"

#: Start times of requests that cannot carry an attribute (the original
#: accepted "mostly any hashable object"), keyed on ``hash(req)``. Bounded:
#: the oldest entries go first when a request never ends.
requests = {}
_REQUESTS_MAX = 10000
_requests_lock = threading.Lock()

_ATTR = "_gstats_started"
_perf_counter = time.perf_counter
_send2 = _client.send2
_send3 = _client.send3


def _to_bytes(prefix):
    """The prefix as bytes; None if it is neither str nor bytes-like."""
    if type(prefix) is bytes:
        return prefix
    if isinstance(prefix, str):
        return prefix.encode("utf-8")
    if isinstance(prefix, (bytearray, memoryview)):
        return bytes(prefix)
    return None


def _bad_prefix(prefix):
    _client.note_error(
        ("prefix", type(prefix).__name__),
        "gstats: prefix must be str or bytes, got %s %r; the message was dropped",
        type(prefix).__name__,
        prefix,
    )


def _remember(req, started):
    try:
        setattr(req, _ATTR, started)
        return
    except (AttributeError, TypeError):
        pass
    try:
        key = hash(req)
    except TypeError:
        _client.note_error(
            ("unhashable", type(req).__name__),
            "gstats: cannot time a %s: it takes no attributes and is not hashable",
            type(req).__name__,
        )
        return
    with _requests_lock:
        requests.pop(key, None)
        requests[key] = started
        while len(requests) > _REQUESTS_MAX:
            del requests[next(iter(requests))]


def _forget(req):
    """The start time of ``req`` (removed), or None if it was not started."""
    try:
        d = req.__dict__
    except AttributeError:
        d = None
    if d is not None and _ATTR in d:
        return d.pop(_ATTR)
    started = getattr(req, _ATTR, None)
    if started is not None:
        try:
            delattr(req, _ATTR)
        except (AttributeError, TypeError):
            pass
        return started
    if not requests:
        return None
    try:
        key = hash(req)
    except TypeError:
        return None
    with _requests_lock:
        return requests.pop(key, None)


def start_request(req, collect=False, collector_addr=DEFAULT_COLLECTOR_ADDR,
                  prefix=DEFAULT_PREFIX, *, collector=None):
    """Remember when ``req`` started; with ``collect=True`` report the start.

    :param req: the request (gunicorn's ``req``); any object that takes an
        attribute, or any hashable object.
    :param collect: send the "request started" message to the collector.
    :param collector_addr: the collector's stats (PULL) address.
    :param prefix: label of the application, ``str`` or ``bytes``.
    :param collector: same as ``collector_addr`` (the spelling of the
        original README); wins if both are given.

    Never raises and never blocks.
    """
    try:
        _remember(req, _perf_counter())
        if collect:
            p = _to_bytes(prefix)
            if p is None:
                _bad_prefix(prefix)
                return
            _send2(collector or collector_addr, p, b"")
    except Exception as exc:  # never hurt the application
        _client.note_error(("start", type(exc).__name__), "gstats: start_request failed: %r", exc)


def end_request(req, collector_addr=DEFAULT_COLLECTOR_ADDR, prefix=DEFAULT_PREFIX,
                *, collector=None, status=None):
    """Report that ``req`` finished; return its duration in milliseconds.

    :param status: optional HTTP status code (int) to report with it.

    Returns None (and sends nothing) if ``start_request`` was not called for
    ``req``. Never raises and never blocks.
    """
    ended = _perf_counter()
    try:
        started = _forget(req)
        if started is None:
            return None
        ms = (ended - started) * 1000.0
        p = _to_bytes(prefix)
        if p is None:
            _bad_prefix(prefix)
            return ms
        addr = collector or collector_addr
        if status is None:
            _send2(addr, p, b"%.3f" % ms)
        else:
            _send3(addr, p, b"%.3f" % ms, b"%d" % int(status))
        return ms
    except Exception as exc:  # never hurt the application
        _client.note_error(("end", type(exc).__name__), "gstats: end_request failed: %r", exc)
        return None


def client_stats():
    """This process's send counters: ``{"sent", "dropped", "reported", "errors", "queued"}``.

    Each counts events (a request's start or finish), whether they travel
    packed or as classic messages: ``sent`` those handed to libzmq;
    ``dropped`` those not sent because the collector was not connected or
    not keeping up; ``reported`` the dropped ones reported to their
    collector in a packed message (its ``client_dropped``; classic messages
    cannot report); ``errors`` everything else that was lost (bad address,
    bad prefix); ``queued`` those waiting right now to be sent in the next
    batch (a few milliseconds). Counters start at zero in each process (a forked worker
    does not inherit its parent's).
    """
    return _client.stats()


def flush():
    """Hand the messages waiting for the next batch to libzmq now (never blocks)."""
    _client.flush()


def close():
    """Flush, then close this process's sockets (they reopen on the next send)."""
    _client.close()


def context_factory():
    """Return a function giving this process's zmq context (original API)."""
    return get_context
