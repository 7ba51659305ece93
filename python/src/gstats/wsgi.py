"""A small WSGI application that serves the collector's statistics.

    gunicorn gstats.wsgi:app -b localhost:8002

``GET /_status`` answers the collector's ``STATS`` reply (JSON) as is;
``/rtimes`` answers ``RTIMES``. Settings come from the environment when this
module is imported:

    GSTATS_COMM_ADDR    the collector's control (REP) address
                        [tcp://127.0.0.1:2345]; GSTATS_COMMS_ADDR (the name
                        gstats 0.6 actually read) is accepted too
    GSTATS_ALLOWED_IPS  client addresses allowed to read the statistics
                        [127.0.0.1,::1]: addresses or networks (CIDR),
                        IPv4 or IPv6, separated by commas or spaces; the
                        old ':'-separated list of IPv4 addresses still works
    GSTATS_TIMEOUT      seconds to wait for the collector's answer [2]
    GSTATS_CURVE_SERVER_KEY, GSTATS_CURVE_CLIENT_KEY
                        ZeroMQ CURVE on the control requests, as for the
                        hooks (see gstats.gunicorn): the collector's public
                        key (Z85 or key file) and this client's secret key
                        file [off]

Other clients get ``403`` with the body ``You are not allowed to see this!``;
an unknown path gets ``404``; when the collector does not answer in time the
answer is ``503`` (``502`` if it answers something that is not JSON).
Only ``REMOTE_ADDR`` is checked (proxies' headers are not trusted).

Run it with sync or gthread workers (gevent works too: the wait for the
collector then uses ``zmq.green`` and does not block other greenlets).
"""

import ipaddress
import json
import os
import re
import sys
import threading

import zmq

from . import _curve
from ._client import check_address, get_context

__all__ = [
    "AllowList",
    "Application",
    "CollectorError",
    "CollectorTimeout",
    "ControlClient",
    "DEFAULT_ALLOWED_IPS",
    "DEFAULT_COMM_ADDR",
    "FORBIDDEN_BODY",
    "app",
    "from_environ",
    "parse_allowed_ips",
]

DEFAULT_COMM_ADDR = "tcp://127.0.0.1:2345"
DEFAULT_ALLOWED_IPS = "127.0.0.1,::1"
DEFAULT_TIMEOUT = 2.0
FORBIDDEN_BODY = b"You are not allowed to see this!"

_SEPARATORS = re.compile(r"[,\s]+")


# --- allowed client addresses ------------------------------------------------

def _network(text):
    """An ``ip_network`` from ``1.2.3.4``, ``10.0.0.0/8``, ``::1``, ``[::1]``..."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(text)
        text = text[1:end] + text[end + 1:]
    net = ipaddress.ip_network(text, strict=False)
    if net.version == 6 and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
        # ::ffff:10.0.0.0/104 is 10.0.0.0/8: client addresses given as
        # IPv4-mapped IPv6 are checked as IPv4, so the entry must be too.
        net = ipaddress.ip_network("%s/%d" % (net.network_address.ipv4_mapped, net.prefixlen - 96))
    return net


def _parse_entry(entry, source):
    try:
        return [_network(entry)]
    except ValueError:
        pass
    if ":" in entry and "." in entry:
        # gstats 0.6 separated IPv4 addresses with ':'.
        networks = []
        for part in entry.split(":"):
            if not part:
                continue
            try:
                net = _network(part)
            except ValueError:
                net = None
            if net is None or net.version != 4:
                raise ValueError(_bad_entry(source, part, entry))
            networks.append(net)
        if networks:
            return networks
    raise ValueError(_bad_entry(source, entry))


def _bad_entry(source, bad, whole=None):
    where = "" if whole is None or whole == bad else " (in %r)" % whole
    return (
        "%s: %r%s is not an IP address or network; list addresses or CIDR "
        "networks separated by commas, e.g. 127.0.0.1,::1,10.0.0.0/8 "
        "(':' still separates IPv4 addresses, as in gstats 0.6)" % (source, bad, where)
    )


class AllowList:
    """A set of IPv4/IPv6 networks a client address is checked against."""

    def __init__(self, networks=()):
        self.networks = tuple(networks)
        self._v4 = tuple(n for n in self.networks if n.version == 4)
        self._v6 = tuple(n for n in self.networks if n.version == 6)

    def __repr__(self):
        return "AllowList(%s)" % ", ".join(str(n) for n in self.networks)

    def __len__(self):
        return len(self.networks)

    def __contains__(self, address):
        return self.allows(address)

    def allows(self, address):
        """True if ``address`` (a string, e.g. REMOTE_ADDR) is in the list."""
        if not address or not isinstance(address, str):
            return False
        text = address.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        text = text.split("%", 1)[0]  # IPv6 zone id
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        networks = self._v4 if ip.version == 4 else self._v6
        return any(ip in net for net in networks)


def parse_allowed_ips(value, source="GSTATS_ALLOWED_IPS"):
    """Parse allowed client addresses into an ``AllowList``.

    ``value`` is a string (entries separated by commas or whitespace; the
    old ':'-separated IPv4 list is recognised) or an iterable of entries.
    Each entry is an IPv4 or IPv6 address or network (``10.0.0.0/8``,
    ``fe80::/10``, ``[::1]``). Raises ``ValueError`` naming a bad entry.
    """
    if isinstance(value, str):
        entries = _SEPARATORS.split(value.strip())
    else:
        entries = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError("%s: %r is not a string" % (source, item))
            entries.extend(_SEPARATORS.split(item.strip()))
    networks = []
    for entry in entries:
        if entry:
            networks.extend(_parse_entry(entry, source))
    return AllowList(networks)


# --- the collector's control socket -----------------------------------------

class CollectorError(Exception):
    """The collector could not be asked, or answered nonsense."""


class CollectorTimeout(CollectorError):
    """The collector did not answer within the timeout."""


def _green_module():
    """``zmq.green`` if gevent has patched this process, else None."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        import zmq.green
        return zmq.green
    return None


_create_lock = threading.Lock()


def _after_fork_in_child():
    global _create_lock
    _create_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ControlClient:
    """A REQ socket to the collector's control address, with a timeout.

    One socket per process, used under a lock. After a timeout or an error
    the socket is closed (LINGER 0) and a new one is made for the next
    request, as a REQ socket that missed its reply cannot be reused.
    ``curve`` (a ``gstats._curve.CurveKeys``) makes it a CURVE client; a
    collector that refuses its keys never answers (``CollectorTimeout``).
    """

    def __init__(self, address=DEFAULT_COMM_ADDR, timeout=DEFAULT_TIMEOUT, context=None,
                 curve=None):
        self.address = check_address(address, "control address")
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds, got %r" % (timeout,))
        if curve is not None and not isinstance(curve, _curve.CurveKeys):
            raise TypeError("curve must be CurveKeys or None, got %s" % type(curve).__name__)
        self.curve = curve
        self.timeout = float(timeout)
        self._given_context = context
        self._given_pid = os.getpid()
        # Per-process state, made on first use in each process (after
        # gunicorn's fork, and after gevent's monkey-patching).
        self._pid = None
        self._lock = None
        self._green = None
        self._green_ctx = None
        self._sock = None

    def _process_lock(self):
        pid = os.getpid()
        if self._pid != pid:
            with _create_lock:
                if self._pid != pid:
                    self._green = _green_module()
                    if self._green is not None:
                        from gevent.lock import Semaphore
                        self._lock = Semaphore()
                    else:
                        self._lock = threading.Lock()
                    self._sock = None  # the parent's, if any, is not ours
                    self._green_ctx = None
                    self._pid = pid
        return self._lock

    def _socket(self):
        if self._sock is None:
            if self._green is not None:
                if self._green_ctx is None:
                    self._green_ctx = self._green.Context()
                ctx = self._green_ctx
            elif self._given_context is not None and self._given_pid == os.getpid():
                ctx = self._given_context
            else:
                ctx = get_context()
            sock = ctx.socket(zmq.REQ)
            try:
                sock.setsockopt(zmq.LINGER, 0)
                if self.curve is not None:
                    self.curve.apply(sock)
                sock.connect(self.address)
            except BaseException:
                sock.close(linger=0)
                raise
            self._sock = sock
        return self._sock

    def _discard(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close(linger=0)
            except Exception:
                pass

    def request(self, command):
        """Send ``command`` (bytes) and return the reply (bytes).

        Raises ``CollectorTimeout`` if no reply comes within the timeout and
        ``CollectorError`` for other failures (e.g. a bad address).
        """
        with self._process_lock():
            try:
                sock = self._socket()
                sock.send(command, zmq.NOBLOCK)
                if sock.poll(int(self.timeout * 1000), zmq.POLLIN):
                    return sock.recv(zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                self._discard()
                raise CollectorError(
                    "cannot ask gstats-collectd at %s: %s" % (self.address, exc)) from exc
            self._discard()
            raise CollectorTimeout(
                "gstats-collectd at %s did not answer within %g s; is it running?"
                % (self.address, self.timeout))

    def close(self):
        """Close the socket of this process, if any."""
        with self._process_lock():
            self._discard()


# --- the application ---------------------------------------------------------

def _text(start_response, status, body, extra=()):
    headers = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("X-Content-Type-Options", "nosniff"),
    ]
    headers.extend(extra)
    start_response(status, headers)
    return [body]


class Application:
    """The status application (same constructor as gstats 0.6's).

    :param zmq_context: a zmq context to use; None (recommended) uses one
        per process, created after gunicorn forks.
    :param gstats_addr: the collector's control address.
    :param allowed_ips: an ``AllowList``, a string (see
        ``parse_allowed_ips``) or a list of addresses/networks.
    :param timeout: seconds to wait for the collector.
    :param curve: ``gstats._curve.CurveKeys`` for CURVE on the control
        requests (see ``from_environ``), or None.
    """

    ROUTES = {
        "_status": b"STATS",
        "stats": b"STATS",
        "rtimes": b"RTIMES",
        "_rtimes": b"RTIMES",
    }

    def __init__(self, zmq_context=None, gstats_addr=DEFAULT_COMM_ADDR,
                 allowed_ips=("127.0.0.1",), timeout=DEFAULT_TIMEOUT, curve=None):
        if isinstance(allowed_ips, AllowList):
            self.allowed = allowed_ips
        else:
            self.allowed = parse_allowed_ips(allowed_ips, "allowed_ips")
        self.gstats_addr = gstats_addr
        self.control = ControlClient(gstats_addr, timeout, zmq_context, curve)

    def __repr__(self):
        return "Application(gstats_addr=%r, allowed=%r)" % (self.gstats_addr, self.allowed)

    def __call__(self, environ, start_response):
        if not self.allowed.allows(environ.get("REMOTE_ADDR")):
            return _text(start_response, "403 Forbidden", FORBIDDEN_BODY)
        path = environ.get("PATH_INFO") or "/"
        segment = next((s for s in path.split("/") if s), "")
        command = self.ROUTES.get(segment)
        if command is None:
            return _text(start_response, "404 Not Found", b"Not found\n")
        try:
            reply = self.control.request(command)
        except CollectorTimeout as exc:
            return _text(start_response, "503 Service Unavailable",
                         (str(exc) + "\n").encode(), [("Retry-After", "5")])
        except CollectorError as exc:
            return _text(start_response, "502 Bad Gateway", (str(exc) + "\n").encode())
        try:
            json.loads(reply)
        except ValueError:
            msg = "gstats-collectd at %s answered %r to %s, not JSON\n" % (
                self.gstats_addr, reply[:100], command.decode())
            return _text(start_response, "502 Bad Gateway", msg.encode())
        start_response("200 OK", [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(reply))),
            ("Cache-Control", "no-store"),
        ])
        if environ.get("REQUEST_METHOD") == "HEAD":
            return [b""]
        return [reply]


def from_environ(environ=None):
    """Build an ``Application`` from GSTATS_* variables (see the module doc)."""
    env = os.environ if environ is None else environ
    address = env.get("GSTATS_COMM_ADDR") or env.get("GSTATS_COMMS_ADDR") or DEFAULT_COMM_ADDR
    raw_ips = (env.get("GSTATS_ALLOWED_IPS") or "").strip() or DEFAULT_ALLOWED_IPS
    raw_timeout = env.get("GSTATS_TIMEOUT") or str(DEFAULT_TIMEOUT)
    try:
        timeout = float(raw_timeout)
    except ValueError:
        raise ValueError("GSTATS_TIMEOUT=%r is not a number of seconds" % raw_timeout) from None
    if not timeout > 0:
        raise ValueError("GSTATS_TIMEOUT=%r must be more than 0 seconds" % raw_timeout)
    try:
        check_address(address, "GSTATS_COMM_ADDR")
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    allowed = parse_allowed_ips(raw_ips, "GSTATS_ALLOWED_IPS")
    return Application(None, address, allowed, timeout, _curve.from_environ(env))


def context_factory():
    """Return a function giving this process's zmq context (gstats 0.6 API)."""
    return get_context


app = from_environ()
gstats_control = app.gstats_addr
allowed_ips = [
    str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
    for n in app.allowed.networks
]
