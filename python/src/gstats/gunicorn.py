"""Ready-made gunicorn hooks that report every request to gstats-collectd.

In ``gunicorn.conf.py``::

    from gstats.gunicorn import pre_request, post_request, post_fork, worker_exit

configured by environment variables (read when this module is imported,
i.e. when gunicorn loads its configuration):

    GSTATS_STATS_ADDR   the collector's stats (PULL) address
                        [tcp://127.0.0.2:2345]; GSTATS_COLLECTOR_ADDR is
                        accepted as another name for it
    GSTATS_PREFIX       the application's label [empty: the collector
                        reports it as "default"]
    GSTATS_SEND_START   1 (default) sends a "started" message in
                        pre_request; 0 sends only the "finished" message
    GSTATS_SNDHWM       messages libzmq queues per process at most while
                        the collector is slow [1000]
    GSTATS_FLUSH_MS     messages are sent in batches, at most this many
                        milliseconds after they were made [10]; 0 sends
                        each message at once (more CPU: every message then
                        wakes libzmq's I/O thread and the collector)
    GSTATS_PACK         1 (default) sends events packed, many per ZeroMQ
                        message, which gstats-collectd reads; packed
                        messages also report the events dropped, which the
                        collector counts as client_dropped; 0 sends one
                        classic message per event, for the original
                        Python collector (the drops are then not reported)
    GSTATS_CURVE_SERVER_KEY
                        turns ZeroMQ CURVE on: the collector's public key,
                        40 characters of Z85 or the path of its key file
                        (NAME.key from ``gstatsctl keygen``) [off]
    GSTATS_CURVE_CLIENT_KEY
                        with CURVE, the path of this client's secret key
                        file (NAME.key_secret, mode 0600), whose public key
                        is in the collector's curve_client_keys
    GSTATS_DISABLED     1 turns the hooks into no-ops

or in one line, which overrides the environment::

    gstats.gunicorn.configure(address="tcp://127.0.0.1:2345", prefix="shop")

``Hooks`` gives independent sets of hooks, e.g. with a prefix per request::

    def by_path(req):
        return "api" if req.path.startswith("/api/") else "web"

    hooks = gstats.gunicorn.Hooks(prefix_func=by_path)
    pre_request, post_request = hooks.pre_request, hooks.post_request

Each request reports a start from ``pre_request`` and a finish with its
duration and status code from ``post_request`` (no status when gunicorn has
no response, e.g. the request could not be parsed). By default the events
are packed, many to a ZeroMQ message, which costs the worker a fraction of
one message per event; with ``GSTATS_PACK=0`` each event is its own classic
message, ``[prefix, b""]`` and ``[prefix, b"<ms>", b"<status>"]``, as the
original client sent them. The start time is kept on the request object, so requests that
overlap in one worker (gthread, gevent) are timed independently. Messages
leave in batches, at most GSTATS_FLUSH_MS after they were made. The hooks
never raise and never block; see ``gstats.client_stats()`` for what was
dropped. SNDHWM and the flush delay are settings of the whole process.
"""

import os
import time

from . import _client, _curve
from ._client import check_address

__all__ = [
    "Hooks",
    "check_address",
    "configure",
    "post_fork",
    "post_request",
    "pre_request",
    "worker_exit",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

#: Attributes set on gunicorn's request object (the hot path spells the
#: first one out).
START_ATTR = "_gstats_t0"
PREFIX_ATTR = "_gstats_prefix"

_STATUS = {code: b"%d" % code for code in range(100, 600)}
#: The end of a packed finish record, by status code.
_SUFFIX = {code: b"\t%d\n" % code for code in range(100, 600)}


def _status_frame(code):
    """The status frame for an unusual code (not an int in 100-599), or None."""
    try:
        return b"%d" % int(code)
    except (TypeError, ValueError):
        return None


def _finish_frames(prefix, seconds, code):
    """The classic finish message: prefix, milliseconds, and the status if any."""
    ms = b"%.3f" % (seconds * 1000.0)
    status = None if code is None else (_STATUS.get(code) or _status_frame(code))
    return (prefix, ms) if status is None else (prefix, ms, status)


def _packable(prefix):
    """Whether ``prefix`` can travel in a packed message (no tab, no newline)."""
    return b"\t" not in prefix and b"\n" not in prefix


def _suffix(code):
    """The end of a packed finish record for an unusual status code."""
    if code is None:
        return b"\n"
    frame = _status_frame(code)
    return b"\n" if frame is None else b"\t" + frame + b"\n"


def _env_bool(env, name, default):
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        "%s=%r is not a boolean; use 1 or 0 (also true/false, yes/no, on/off)" % (name, raw)
    )


def _prefix_bytes(prefix, what="prefix"):
    if isinstance(prefix, bytes):
        return prefix
    if isinstance(prefix, str):
        return prefix.encode("utf-8")
    raise TypeError("%s must be str or bytes, got %s" % (what, type(prefix).__name__))


class Hooks:
    """One set of gunicorn hooks sending to one collector.

    Arguments left as None come from the environment (see the module
    documentation), then from the defaults.

    :param address: the collector's stats (PULL) address.
    :param prefix: the label, ``str`` or ``bytes``.
    :param prefix_func: optional ``f(req) -> str | bytes`` called in
        ``pre_request`` to choose a prefix per request (e.g. from
        ``req.path``); if it raises, ``prefix`` is used and an error counted.
    :param send_start: send the "started" message (default True).
    :param sndhwm: libzmq's per-process send queue bound, in messages.
    :param flush_ms: batching delay in milliseconds (0: no batching).
    :param pack: send events packed, many per message (default True);
        False sends the original's classic messages.
    :param curve_server_key: the collector's CURVE public key (Z85) or the
        path of its key file; "" turns CURVE off. CURVE settings belong to
        the address: they apply to every message this process sends there.
    :param curve_client_key: the path of this client's CURVE secret key
        file.
    :param enabled: False makes all hooks no-ops.
    :param environ: mapping to read settings from (default ``os.environ``).
    """

    def __init__(self, address=None, prefix=None, *, prefix_func=None, send_start=None,
                 sndhwm=None, flush_ms=None, pack=None, curve_server_key=None,
                 curve_client_key=None, enabled=None, environ=None):
        env = os.environ if environ is None else environ
        if address is None:
            address = env.get("GSTATS_STATS_ADDR") or env.get("GSTATS_COLLECTOR_ADDR") \
                or _client.DEFAULT_COLLECTOR_ADDR
        self.address = check_address(address)
        if prefix is None:
            prefix = env.get("GSTATS_PREFIX", "")
        self.prefix = _prefix_bytes(prefix)
        if prefix_func is not None and not callable(prefix_func):
            raise TypeError("prefix_func must be callable, got %r" % (prefix_func,))
        self.prefix_func = prefix_func
        self.send_start = _env_bool(env, "GSTATS_SEND_START", True) if send_start is None \
            else bool(send_start)
        if sndhwm is None:
            raw = env.get("GSTATS_SNDHWM")
            if raw is not None:
                try:
                    sndhwm = int(raw)
                except ValueError:
                    raise ValueError("GSTATS_SNDHWM=%r is not a number of messages" % raw) from None
        if sndhwm is not None:
            if int(sndhwm) <= 0:
                raise ValueError("sndhwm must be a positive number of messages, got %r" % sndhwm)
            _client.set_sndhwm(sndhwm)
        self.sndhwm = sndhwm
        if flush_ms is None:
            raw = env.get("GSTATS_FLUSH_MS")
            if raw is not None:
                try:
                    flush_ms = float(raw)
                except ValueError:
                    raise ValueError("GSTATS_FLUSH_MS=%r is not a number of milliseconds"
                                     % raw) from None
        if flush_ms is not None:
            if not 0 <= float(flush_ms) <= 1000:
                raise ValueError("flush_ms must be between 0 and 1000 milliseconds, got %r"
                                 % (flush_ms,))
            _client.set_flush_delay(float(flush_ms) / 1000.0)
        self.flush_ms = flush_ms
        self.pack = _env_bool(env, "GSTATS_PACK", True) if pack is None else bool(pack)
        if enabled is None:
            enabled = not _env_bool(env, "GSTATS_DISABLED", False)
        self.enabled = bool(enabled)
        self.curve = self._curve_keys(env, curve_server_key, curve_client_key)
        if self.enabled:
            _client.set_curve(self.address, self.curve)
        self.pre_request, self.post_request = self._build()

    @staticmethod
    def _curve_keys(env, server, client):
        """The CURVE keys from the arguments, else the environment; None if off."""
        server_what = client_what = None
        if server is None:
            server, server_what = (env.get(_curve.SERVER_KEY_VAR) or "").strip(), _curve.SERVER_KEY_VAR
        if client is None:
            client, client_what = (env.get(_curve.CLIENT_KEY_VAR) or "").strip(), _curve.CLIENT_KEY_VAR
        return _curve.resolve(server, client, server_what or "curve_server_key",
                              client_what or "curve_client_key")

    def __repr__(self):
        return "Hooks(address=%r, prefix=%r, send_start=%r, pack=%r, curve=%s, enabled=%r)" % (
            self.address, self.prefix, self.send_start, self.pack,
            "on" if self.curve is not None else "off", self.enabled)

    def _choose_prefix(self, req):
        """The prefix ``prefix_func`` gives ``req``; the default if it fails."""
        try:
            return _prefix_bytes(self.prefix_func(req), "prefix_func's result")
        except Exception as exc:
            _client.note_error(("prefix_func", type(exc).__name__),
                               "gstats: prefix_func failed: %r; using prefix %r", exc, self.prefix)
            return self.prefix

    def _build(self):
        """Make the two hot-path functions as closures (no attribute lookups)."""
        addr = self.address
        default_prefix = self.prefix
        send_start = self.send_start
        prefix_func = self.prefix_func
        perf_counter = time.perf_counter
        enqueue = _client._enqueue
        note_error = _client.note_error
        start_attr = START_ATTR
        prefix_attr = PREFIX_ATTR

        if not self.enabled:
            def pre_request(worker, req):
                pass

            def post_request(worker, req, environ=None, resp=None):
                pass

            return pre_request, post_request
        if self.pack:
            return self._build_packed()

        choose_prefix = self._choose_prefix

        def pre_request(worker, req):
            """gunicorn pre_request: note the start time, report the start."""
            try:
                if prefix_func is None:
                    prefix = default_prefix
                else:
                    prefix = choose_prefix(req)
                    setattr(req, prefix_attr, prefix)
                setattr(req, start_attr, perf_counter())
                if send_start:
                    enqueue(addr, (prefix, b""))
            except Exception as exc:  # never break a request
                note_error(("pre_request", type(exc).__name__),
                           "gstats: pre_request hook failed: %r", exc)

        def post_request(worker, req, environ=None, resp=None):
            """gunicorn post_request: report the duration and status code."""
            ended = perf_counter()
            try:
                started = getattr(req, start_attr, None)
                if started is None:
                    return  # pre_request did not run for this request
                if prefix_func is None:
                    prefix = default_prefix
                else:
                    prefix = getattr(req, prefix_attr, default_prefix)
                enqueue(addr, _finish_frames(prefix, ended - started,
                                             getattr(resp, "status_code", None)))
            except Exception as exc:  # never break a request
                note_error(("post_request", type(exc).__name__),
                           "gstats: post_request hook failed: %r", exc)

        return pre_request, post_request

    def _build_packed(self):
        """The hot-path functions for packed events.

        A request costs two appends to a list (no lock: ``list.append`` is
        atomic) and one formatting; the flusher packs and sends what
        accumulates every flush delay, or the caller does when a channel
        holds ``PACK_THRESHOLD`` events. Prefixes holding a tab or a newline
        cannot be packed and go as classic messages.
        """
        addr = self.address
        default_prefix = self.prefix
        send_start = self.send_start
        prefix_func = self.prefix_func
        perf_counter = time.perf_counter
        enqueue = _client._enqueue
        note_error = _client.note_error
        ch = _client.channel(addr)
        append = ch.records.append
        records = ch.records
        arm = _client.arm_channel
        flush_channel = _client.flush_channel
        suffixes = _SUFFIX.get
        prefix_attr = PREFIX_ATTR
        start_rec = default_prefix + b"\t\n"
        default_packable = _packable(default_prefix)

        choose_prefix = self._choose_prefix

        def pre_request(worker, req):
            """gunicorn pre_request: note the start time, report the start."""
            try:
                if prefix_func is None:
                    req._gstats_t0 = perf_counter()
                    if send_start:
                        if default_packable:
                            append(start_rec)
                            if not ch.armed:
                                arm(ch)
                        else:
                            enqueue(addr, (default_prefix, b""))
                    return
                prefix = choose_prefix(req)
                setattr(req, prefix_attr, prefix)
                req._gstats_t0 = perf_counter()
                if send_start:
                    if _packable(prefix):
                        append(prefix + b"\t\n")
                        if not ch.armed:
                            arm(ch)
                    else:
                        enqueue(addr, (prefix, b""))
            except Exception as exc:  # never break a request
                note_error(("pre_request", type(exc).__name__),
                           "gstats: pre_request hook failed: %r", exc)

        def post_request(worker, req, environ=None, resp=None):
            """gunicorn post_request: report the duration and status code."""
            ended = perf_counter()
            try:
                started = getattr(req, "_gstats_t0", None)
                if started is None:
                    return  # pre_request did not run for this request
                if prefix_func is None:
                    prefix, packable = default_prefix, default_packable
                else:
                    prefix = getattr(req, prefix_attr, default_prefix)
                    packable = _packable(prefix)
                code = getattr(resp, "status_code", None)
                if packable:
                    suffix = suffixes(code)
                    if suffix is None:
                        suffix = _suffix(code)
                    append(b"%s\t%.3f%s" % (prefix, (ended - started) * 1000.0, suffix))
                    if len(records) >= ch.limit:
                        flush_channel(ch)
                    elif not ch.armed:
                        arm(ch)
                    return
                enqueue(addr, _finish_frames(prefix, ended - started, code))
            except Exception as exc:  # never break a request
                note_error(("post_request", type(exc).__name__),
                           "gstats: post_request hook failed: %r", exc)

        return pre_request, post_request

    def post_fork(self, server, worker):
        """gunicorn post_fork: connect now, so the first requests are not dropped."""
        if self.enabled:
            _client.connect(self.address)

    def worker_exit(self, server, worker):
        """gunicorn worker_exit: close the socket (LINGER 0, never waits)."""
        try:
            _client.close()
        except Exception:
            pass


_default = Hooks()


def configure(address=None, prefix=None, **kwargs):
    """Replace the settings of the module-level hooks; returns the ``Hooks``.

    Takes the arguments of ``Hooks``. Call it in ``gunicorn.conf.py``; the
    module-level ``pre_request``/``post_request``/``post_fork``/``worker_exit``
    use it from then on, even if imported before.
    """
    global _default
    _default = Hooks(address, prefix, **kwargs)
    return _default


def current():
    """The ``Hooks`` the module-level functions use."""
    return _default


def pre_request(worker, req):
    """gunicorn ``pre_request`` hook (settings: see ``configure``)."""
    _default.pre_request(worker, req)


def post_request(worker, req, environ=None, resp=None):
    """gunicorn ``post_request`` hook (settings: see ``configure``)."""
    _default.post_request(worker, req, environ, resp)


def post_fork(server, worker):
    """gunicorn ``post_fork`` hook: open the worker's socket early."""
    _default.post_fork(server, worker)


def worker_exit(server, worker):
    """gunicorn ``worker_exit`` hook: close the worker's socket."""
    _default.worker_exit(server, worker)
