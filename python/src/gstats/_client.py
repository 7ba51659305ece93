"""Per-process PUSH sockets to gstats-collectd that never block the caller.

Rules this module keeps, because it runs inside the web application:

* One PUSH socket per collector address per process, created lazily. A fork
  (gunicorn forks its workers from the master) invalidates everything
  inherited from the parent: the child creates its own context, sockets and
  flusher, and never touches the parent's.
* Nothing blocks. Messages go to a small per-address outbox (at most
  ``OUTBOX_MAX`` messages) and are handed to libzmq in batches: by the
  caller that finds the oldest queued message ``FLUSH_DELAY`` (10 ms) old or
  the outbox full, or else by a flusher thread (a greenlet under gevent)
  that checks every ``FLUSH_DELAY`` while messages come and sleeps when
  they stop. Batching matters: every message sent on its own wakes libzmq's
  I/O thread and the collector, which costs far more than the send itself.
  ``set_flush_delay(0)`` sends each message at once.
* Sends are ``NOBLOCK``. The socket has ``IMMEDIATE=1`` (nothing is queued
  for a collector that is not connected), a bounded ``SNDHWM`` (a slow
  collector cannot make the process grow) and ``LINGER=0`` (closing and
  exiting never wait for the collector). What libzmq refuses is dropped and
  counted, and for ``PAUSE_SECONDS`` after that, messages to that address
  are dropped without trying. The one exception: while a new socket's TCP
  connection is being set up (its first ``HOLD_SECONDS``), refused messages
  stay in the outbox and are retried, so a new worker's first requests count.
* Nothing here raises into the caller: failures are counted (``errors``)
  and logged once per process and kind.
* Drops are counted on both sides. The events dropped for an address wait
  in ``unreported``; the next packed message to it that libzmq takes
  carries their number in its header (``gstats-batch/1 dropped=N``) and the
  collector adds it to its ``client_dropped``. When the flusher goes idle,
  then every ``REPORT_SECONDS`` while drops wait, and at close, they are
  reported in a packed message holding no event (one try each time).
  Classic messages cannot carry the count: addresses sent to only
  classically never report.
* CURVE keys belong to an address (``set_curve``); the default comes from
  GSTATS_CURVE_SERVER_KEY and GSTATS_CURVE_CLIENT_KEY, read when this
  module is imported, so a bad key fails the configuration, never a request.
* libzmq sockets are not thread-safe, so all socket work happens under one
  per-process lock, never held across anything that could block or yield
  to the gevent hub. ``threading.local`` is deliberately not used: under
  gevent it is per greenlet.
"""

import atexit
import logging
import os
import re
import threading
import time

import zmq

from . import _curve

__all__ = [
    "DEFAULT_COLLECTOR_ADDR",
    "DEFAULT_SNDHWM",
    "check_address",
    "close",
    "connect",
    "flush",
    "get_context",
    "send",
    "send2",
    "send3",
    "set_curve",
    "set_flush_delay",
    "set_sndhwm",
    "stats",
]

log = logging.getLogger("gstats")

#: Where the original gstats client sent its messages.
DEFAULT_COLLECTOR_ADDR = "tcp://127.0.0.2:2345"

#: Messages libzmq may queue per socket while the collector is slow (about
#: 100 bytes each).
DEFAULT_SNDHWM = 1000

#: Messages wait this long (seconds) in the outbox, so that they go in
#: batches. 0 hands each message to libzmq at once.
DEFAULT_FLUSH_DELAY = 0.01

#: Messages an outbox holds at most; a full outbox is flushed by the caller.
OUTBOX_MAX = 256

#: A new socket's refused messages are kept and retried for this long.
HOLD_SECONDS = 1.0

#: After libzmq refused a message (collector gone or not keeping up), later
#: messages to that address are dropped without trying for this long.
PAUSE_SECONDS = 0.01

#: An address libzmq cannot connect to is not tried again for this long.
BAD_ADDRESS_PAUSE_SECONDS = 1.0

#: Linger given to sockets closed by ``close()``: the I/O thread may go on
#: sending what was flushed while the process lives; nothing ever waits.
CLOSE_LINGER_MS = 100

#: First line of a packed message: one ZeroMQ frame carrying many events,
#: one per line, each the frames of its classic message joined by tabs
#: (``prefix\t`` a start, ``prefix\t12.345\t200`` a finish). The
#: collector's ``wire`` package defines the format; the original collector
#: does not understand it (see ``GSTATS_PACK``).
BATCH_HEADER = b"gstats-batch/1\n"

#: Largest packed frame this client builds, header included: within the
#: collector's default ``max_message_size`` (4 KiB).
MAX_PACKED_BYTES = 4096

#: Room kept in a packed frame for its header: the longest one,
#: ``gstats-batch/1 dropped=9007199254740991\n``.
MAX_HEADER_BYTES = 40

#: Largest drop count one header carries (2^53-1); more waits for the next.
MAX_DROPPED = 2 ** 53 - 1

#: While dropped events wait to be reported and no event comes, the idle
#: flusher tries to report them this often (seconds).
REPORT_SECONDS = 1.0

_HEADER_LEN = len(BATCH_HEADER)
_DROPPED_HEADER = b"gstats-batch/1 dropped=%d\n"

#: Events a channel holds before the caller packs and sends them itself
#: (the flusher sends the others every flush delay).
PACK_THRESHOLD = 256


class _Pack:
    """A packed frame in an outbox, with the number of events it holds."""

    __slots__ = ("frame", "count")

    def __init__(self, frame, count):
        self.frame = frame
        self.count = count


def _events(messages):
    """How many events a list of outbox entries holds."""
    n = 0
    for m in messages:
        n += m.count if type(m) is _Pack else 1
    return n


class Channel:
    """Events for one collector address waiting to be packed, in this process.

    ``records`` is a plain list the hooks append to without a lock (one
    ``list.append`` is atomic); it is emptied in place after a fork, so a
    reference kept by the hooks stays valid in the child. ``armed`` tells
    the hooks the flusher is awake and will send what they append.
    """

    __slots__ = ("address", "records", "armed", "limit")

    def __init__(self, address):
        self.address = address
        self.records = []
        self.armed = False
        # Events held before the caller sends them itself: 1 when the
        # flush delay is 0 (no batching).
        self.limit = PACK_THRESHOLD if _flush_delay > 0 else 1


_channels = {}  # address -> Channel; the objects outlive forks, their contents do not


def channel(address):
    """The packing channel of ``address`` (made once per address)."""
    ch = _channels.get(address)
    if ch is None:
        ch = _channels.setdefault(address, Channel(check_address(address)))
    return ch


_ADDRESS_RE = re.compile(r"^(tcp|ipc|inproc|pgm|epgm|tipc|vmci|udp|ws|wss)://\S+$")

_MORE = zmq.NOBLOCK | zmq.SNDMORE
_LAST = zmq.NOBLOCK
_Again = zmq.Again
_monotonic = time.monotonic


def check_address(address, what="collector address"):
    """Return ``address`` if it looks like a ZeroMQ endpoint, else raise ValueError."""
    if not isinstance(address, str) or not _ADDRESS_RE.match(address):
        raise ValueError(
            "%s %r is not a ZeroMQ address; expected e.g. tcp://127.0.0.2:2345 "
            "(transport://host:port, see zmq_connect(3))" % (what, address)
        )
    return address


def _find_raw_send():
    """Return the backend's ``Socket.send`` (skipping pyzmq's Python layer).

    pyzmq's ``zmq.Socket.send`` is a Python wrapper that only adds options we
    never use (routing ids, groups, a copy threshold); calling the compiled
    base method directly is cheaper. Falls back to the public method if the
    class layout is not the one expected.
    """
    for klass in zmq.Socket.__mro__[1:]:
        fn = klass.__dict__.get("send")
        if fn is not None and callable(fn):
            return fn
    return zmq.Socket.send


_raw_send = _find_raw_send()


class _ProcessState:
    """Everything that belongs to one process: context, sockets, counters."""

    __slots__ = (
        "pid",
        "context",
        "sockets",
        "born",
        "outbox",
        "paused",
        "lock",
        "first_at",
        "armed",
        "active",
        "wake",
        "sent",
        "dropped",
        "errors",
        "reported",
        "unreported",
        "curve",
        "warned",
        "warnings",
        "inherited",
    )

    def __init__(self, inherited=None):
        self.pid = os.getpid()
        self.context = None
        self.sockets = {}  # address -> zmq socket
        self.born = {}  # address -> monotonic time the socket was made
        self.outbox = {}  # address -> [frames, ...] not yet handed to libzmq
        self.paused = {}  # address -> (monotonic time until which sends are skipped, is_error)
        self.lock = threading.Lock()
        self.first_at = None  # monotonic time of the oldest queued message
        self.armed = False  # the flusher is awake, checking every FLUSH_DELAY
        self.active = False  # something was queued since the flusher last looked
        self.wake = None  # the flusher's Event, once it runs
        self.sent = 0
        self.dropped = 0
        self.errors = 0
        self.reported = 0  # dropped events reported to their collector
        self.unreported = {}  # address -> dropped events not reported yet
        self.curve = {}  # address -> the CurveKeys (or None) its socket was made with
        self.warned = set()
        self.warnings = []  # (message, args) to log once the lock is released
        # The parent's context and sockets stay referenced, unused and
        # unclosed: closing them here could disturb the parent, and letting
        # them be garbage-collected would only produce warnings.
        self.inherited = inherited


_state = None
_state_lock = threading.Lock()
_sndhwm = DEFAULT_SNDHWM
_flush_delay = DEFAULT_FLUSH_DELAY

#: CURVE keys per address (None: plain), set by ``set_curve``; addresses not
#: in it use ``_curve_default``, from the environment.
_curve_by_address = {}
_curve_default = _curve.from_environ()


def _after_fork_in_child():
    """Forget the parent's sockets; the child opens its own when it sends."""
    global _state, _state_lock
    old = _state
    _state_lock = threading.Lock()  # the parent's may have been held at fork
    for ch in list(_channels.values()):
        del ch.records[:]  # the parent sends these
        ch.armed = False
    if old is not None:
        _state = _ProcessState(inherited=(old.context, old.sockets, old.inherited))
    else:
        _state = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _new_state():
    """The state of this process, made if missing or left by a parent.

    Forks through ``os.fork`` replace the state in the child at once (see
    ``_after_fork_in_child``), so queueing a message needs no ``getpid()``
    system call (more than a microsecond on some machines); the PID is
    compared here and once per batch, before sending (``_flush_all``).
    """
    global _state
    with _state_lock:
        st = _state
        if st is None or st.pid != os.getpid():
            inherited = None
            if st is not None:
                inherited = (st.context, st.sockets, st.inherited)
            st = _state = _ProcessState(inherited)
        return st


def _warn_once(st, kind, message, *args):
    """Note a warning to log once per process and kind. ``st.lock`` held.

    It is logged by ``_log_warnings`` after the lock is released: a logging
    handler could block or, under gevent, yield, and nothing that can do
    either may run under the lock.
    """
    if kind not in st.warned:
        st.warned.add(kind)
        st.warnings.append((message, args))


def _log_warnings(st):
    while st.warnings:
        try:
            message, args = st.warnings.pop(0)
            log.warning(message, *args)
        except Exception:
            pass


def _drop(st, address, n):
    """Count ``n`` events dropped for ``address``. ``st.lock`` held."""
    if n:
        st.dropped += n
        st.unreported[address] = st.unreported.get(address, 0) + n


def _reported(st, address, n):
    """Note that a packed message libzmq took reported ``n`` drops."""
    if n:
        st.unreported[address] -= n
        st.reported += n


def _open_locked(st, address):
    """The PUSH socket for ``address``, made if needed; None on failure.

    Called with ``st.lock`` held.
    """
    sock = st.sockets.get(address)
    if sock is not None:
        return sock
    try:
        if st.context is None:
            st.context = zmq.Context()
        keys = _curve_by_address.get(address, _curve_default)
        sock = st.context.socket(zmq.PUSH)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.SNDHWM, _sndhwm)
            if keys is not None:
                keys.apply(sock)
            sock.connect(address)
        except BaseException:
            sock.close(linger=0)
            raise
    except Exception as exc:  # bad address, too many open files, ...
        _warn_once(
            st,
            ("connect", address),
            "gstats: cannot connect a PUSH socket to %r: %s; statistics for "
            "this address are not sent (check the collector address)",
            address,
            exc,
        )
        return None
    st.sockets[address] = sock
    st.born[address] = _monotonic()
    st.curve[address] = keys
    return sock


def connect(address):
    """Open this process's socket for ``address`` now (e.g. in ``post_fork``).

    With ``IMMEDIATE=1`` messages are only accepted once the TCP connection
    is up, so connecting early lets it be ready for the first request.
    Returns True if the socket exists.
    """
    try:
        st = _new_state()
        with st.lock:
            ok = _open_locked(st, address) is not None
        _log_warnings(st)
        return ok
    except Exception:  # never raise into the application
        return False


def _send_frames(sock, frames):
    """Send one message; raises zmq.Again if its first frame is refused."""
    last = len(frames) - 1
    if last == 0:
        _raw_send(sock, frames[0], _LAST)
        return
    _raw_send(sock, frames[0], _MORE)
    # Once the first frame is taken, libzmq takes the rest of the message.
    for i in range(1, last):
        _raw_send(sock, frames[i], _MORE)
    _raw_send(sock, frames[last], _LAST)


def _flush_address(st, address, box):
    """Hand the messages of ``box`` (the outbox of ``address``) to libzmq.

    Called with ``st.lock`` held. Leaves in ``box`` only the messages of a
    socket still in its HOLD_SECONDS that libzmq could not take yet. The
    counters count events: a packed frame counts for the events it holds.
    The first packed frame taken reports the drops not reported yet.
    """
    sock = st.sockets.get(address)
    if sock is None:
        sock = _open_locked(st, address)
        if sock is None:
            st.errors += _events(box)
            box.clear()
            st.paused[address] = (_monotonic() + BAD_ADDRESS_PAUSE_SECONDS, True)
            return
    i = 0  # messages taken
    n = 0  # events in them
    unreported = st.unreported.get(address, 0) if st.unreported else 0
    carried = 0  # drops reported by a frame libzmq took
    send = _raw_send
    try:
        for message in box:
            if type(message) is _Pack:
                if unreported:
                    r = min(unreported, MAX_DROPPED)
                    send(sock, _DROPPED_HEADER % r + message.frame[_HEADER_LEN:], _LAST)
                    carried, unreported = r, 0
                else:
                    send(sock, message.frame, _LAST)
                n += message.count
            # The common classic messages (2 or 3 frames) without a loop.
            elif len(message) == 2:
                send(sock, message[0], _MORE)
                send(sock, message[1], _LAST)
                n += 1
            elif len(message) == 3:
                send(sock, message[0], _MORE)
                send(sock, message[1], _MORE)
                send(sock, message[2], _LAST)
                n += 1
            else:
                _send_frames(sock, message)
                n += 1
            i += 1
    except _Again:
        st.sent += n
        _reported(st, address, carried)
        del box[:i]
        now = _monotonic()
        if now - st.born.get(address, 0.0) >= HOLD_SECONDS:
            _drop(st, address, _events(box))
            box.clear()
            st.paused[address] = (now + PAUSE_SECONDS, False)
        return
    except Exception as exc:
        # Not expected (libzmq takes the rest of a message once it took
        # its first frame): a closed socket, a terminated context, frames
        # that are not bytes. Drop the socket; a new one is made next time.
        st.sent += n
        _reported(st, address, carried)
        st.errors += _events(box[i:])
        box.clear()
        st.sockets.pop(address, None)
        st.born.pop(address, None)
        try:
            sock.close(linger=0)
        except Exception:
            pass
        _warn_once(
            st,
            ("send", address, type(exc).__name__),
            "gstats: sending to %r failed: %r; the messages were dropped",
            address,
            exc,
        )
        return
    st.sent += n
    _reported(st, address, carried)
    box.clear()


def _reports_pending(st):
    """Whether drops wait to be reported to a packed address. ``st.lock`` held."""
    return any(n > 0 and a in _channels for a, n in st.unreported.items())


def _report_locked(st):
    """Report the drops waiting for packed addresses, one try each.

    Called with ``st.lock`` held, when the flusher goes idle and at close:
    a packed message holding no event, for every address that packs (has
    a channel), has an open socket and nothing queued.
    """
    if not st.unreported or st.pid != os.getpid():
        return
    for address, n in list(st.unreported.items()):
        if n <= 0 or address not in _channels or st.outbox.get(address):
            continue
        sock = st.sockets.get(address)
        if sock is None:
            continue
        r = min(n, MAX_DROPPED)
        try:
            _raw_send(sock, _DROPPED_HEADER % r, _LAST)
        except Exception:  # refused (zmq.Again) or broken: they wait
            continue
        _reported(st, address, r)


def _pack_locked(st, ch):
    """Move the events of channel ``ch`` into its outbox as packed frames.

    Called with ``st.lock`` held. True if there were events. Events for an
    address that is paused (collector refusing) are dropped and counted.
    """
    records = ch.records
    n = len(records)
    if not n:
        return False
    batch = records[:n]
    del records[:n]  # appends made meanwhile stay, after the first n
    address = ch.address
    if st.paused:
        pause = st.paused.get(address)
        if pause is not None:
            if _monotonic() < pause[0]:
                if pause[1]:
                    st.errors += n
                else:
                    _drop(st, address, n)
                return True
            del st.paused[address]
    box = st.outbox.get(address)
    if box is None:
        box = st.outbox[address] = []
    data = b"".join(batch)
    limit = MAX_PACKED_BYTES - MAX_HEADER_BYTES
    if len(data) <= limit:
        box.append(_Pack(BATCH_HEADER + data, n))
    else:
        pos, end = 0, len(data)
        while pos < end:
            cut = end
            if end - pos > limit:
                cut = data.rfind(b"\n", pos, pos + limit) + 1
                if cut <= pos:  # one event longer than the limit: alone
                    cut = data.find(b"\n", pos) + 1 or end
            chunk = data[pos:cut]
            box.append(_Pack(BATCH_HEADER + chunk, chunk.count(b"\n")))
            pos = cut
    if len(box) > OUTBOX_MAX:
        # A new socket still connecting holds its messages: never more
        # than OUTBOX_MAX of them.
        _drop(st, address, _events(box[OUTBOX_MAX:]))
        del box[OUTBOX_MAX:]
    if st.first_at is None:
        st.first_at = _monotonic()
    return True


def _pack_all_locked(st):
    """Pack every channel's events; True if any had some. ``st.lock`` held."""
    had = False
    for ch in list(_channels.values()):
        if ch.records and _pack_locked(st, ch):
            had = True
    return had


def flush_channel(ch):
    """Pack and send the events of ``ch`` now (the caller found it full)."""
    try:
        st = _state or _new_state()
        with st.lock:
            _pack_locked(st, ch)
            _flush_all_locked(st)
            arm = not st.armed and st.first_at is not None
        if st.warnings:
            _log_warnings(st)
        if arm:
            arm_channel(ch)
    except Exception as exc:
        note_error(("pack", type(exc).__name__), "gstats: cannot send packed events: %r", exc)


def arm_channel(ch):
    """Make sure the flusher is awake to send what ``ch`` holds."""
    try:
        st = _state or _new_state()
        ch.armed = True
        with st.lock:
            st.active = True
            wake = None
            if not st.armed:
                st.armed = True
                wake = st.wake or _start_flusher
        if wake is not None:
            if wake is _start_flusher:
                _start_flusher(st)
            else:
                wake.set()
    except Exception as exc:
        note_error(("arm", type(exc).__name__), "gstats: cannot wake the flusher: %r", exc)


_stale_states = []


def _flush_all(st):
    """Flush every outbox. Called with ``st.lock`` held. True if all empty.

    Checks the PID first (once per batch, not per message): a process forked
    without ``os.fork``'s hooks must not use its parent's sockets. Its state
    is then dropped with what it queued, and the next message starts afresh.
    """
    global _state
    if st.pid != os.getpid():
        st.outbox.clear()
        st.first_at = None
        _stale_states.append(st)  # never collected: its sockets are the parent's
        if _state is st:
            _state = None
        return True
    empty = True
    for address, box in list(st.outbox.items()):
        if box:
            _flush_address(st, address, box)
            if box:
                empty = False
    return empty


def _start_flusher(st):
    """Start the flusher thread (a greenlet under gevent), without the lock.

    ``Thread.start`` waits for the thread to run, which under gevent yields
    to the hub: it must not happen under ``st.lock``.
    """
    wake = threading.Event()
    with st.lock:
        if st.wake is not None:
            wake, start = st.wake, False
        else:
            st.wake, start = wake, True
    if start:
        try:
            threading.Thread(target=_flusher, args=(st, wake), name="gstats-flusher",
                             daemon=True).start()
        except Exception as exc:  # cannot start a thread: send at once instead
            with st.lock:
                st.wake = None
                st.armed = False
                _flush_all_locked(st)
                _warn_once(st, ("flusher",), "gstats: cannot start the flusher thread: %r; "
                           "messages are sent as they come", exc)
            _log_warnings(st)
            return
    wake.set()


def _flusher(st, wake):
    """Send what waited FLUSH_DELAY when no caller did it.

    While messages keep coming it checks every FLUSH_DELAY (callers do most
    of the sending: they flush when the oldest queued message is that old);
    once a check finds nothing new, it sleeps on ``wake`` (no idle
    wake-ups, but one every REPORT_SECONDS while dropped events wait to be
    reported) until the next message.
    """
    try:
        while True:
            with st.lock:
                timeout = REPORT_SECONDS if _reports_pending(st) else None
            if not wake.wait(timeout):
                # No event came: try to report the drops again.
                if _state is not st:
                    return
                with st.lock:
                    _report_locked(st)
                continue
            while True:
                time.sleep(_flush_delay if _flush_delay > 0 else 0.002)
                if _state is not st:
                    return
                with st.lock:
                    packed = _pack_all_locked(st)
                    if packed or (st.first_at is not None and
                                  _monotonic() - st.first_at >= _flush_delay * 0.9):
                        _flush_all_locked(st)
                    if st.first_at is None and not st.active and not packed:
                        # Disarm, then look again: a hook that appended
                        # before seeing ``armed`` False is caught here; one
                        # that appends later sees it and wakes us.
                        for ch in list(_channels.values()):
                            ch.armed = False
                        if not any(ch.records for ch in list(_channels.values())):
                            st.armed = False
                            wake.clear()
                            _report_locked(st)
                            break
                    st.active = False
                if st.warnings:
                    _log_warnings(st)
            if st.warnings:
                _log_warnings(st)
    except Exception as exc:  # keep the application safe, say why once
        with st.lock:
            st.wake = None
            st.armed = False
            _warn_once(st, ("flusher",), "gstats: the flusher stopped: %r", exc)
        _log_warnings(st)


def _flush_all_locked(st):
    """Flush every outbox and note when what is left (if any) was queued."""
    st.first_at = None if _flush_all(st) else _monotonic()


def _enqueue(address, message):
    try:
        st = _state or _new_state()
        with st.lock:
            if st.paused:
                pause = st.paused.get(address)
                if pause is not None:
                    if _monotonic() < pause[0]:
                        if pause[1]:
                            st.errors += 1
                        else:
                            _drop(st, address, 1)
                        return False
                    del st.paused[address]
            box = st.outbox.get(address)
            if box is None:
                box = st.outbox[address] = []
            box.append(message)
            queued = True
            if st.first_at is None:
                st.first_at = _monotonic()
                if _flush_delay <= 0:
                    _flush_all_locked(st)
            elif len(box) >= OUTBOX_MAX or _monotonic() - st.first_at >= _flush_delay:
                _flush_all_locked(st)
                if len(box) > OUTBOX_MAX:  # a new socket still connecting
                    box.pop()
                    _drop(st, address, 1)
                    queued = False
            st.active = True
            wake = None
            if not st.armed and st.first_at is not None:
                st.armed = True
                wake = st.wake or _start_flusher
        if st.warnings:
            _log_warnings(st)
        if wake is not None:
            if wake is _start_flusher:
                _start_flusher(st)
            else:
                wake.set()
        return queued
    except Exception as exc:
        note_error(("enqueue", type(exc).__name__), "gstats: cannot queue a message: %r", exc)
        return False


def send(address, frames):
    """Queue a multipart message (a sequence of bytes); never blocks.

    False if it was dropped at once (collector refusing messages).
    """
    return _enqueue(address, tuple(frames))


def send2(address, first, second):
    """``send(address, [first, second])``."""
    return _enqueue(address, (first, second))


def send3(address, first, second, third):
    """``send(address, [first, second, third])``."""
    return _enqueue(address, (first, second, third))


def flush():
    """Hand everything queued in this process to libzmq now (never blocks)."""
    try:
        st = _state
        if st is None:
            return
        with st.lock:
            _pack_all_locked(st)
            _flush_all_locked(st)
        _log_warnings(st)
    except Exception:
        pass


def note_error(kind, message, *args):
    """Count an error found by a caller (e.g. a bad prefix) and log it once."""
    try:
        st = _state or _new_state()
        with st.lock:
            st.errors += 1
            _warn_once(st, kind, message, *args)
        _log_warnings(st)
    except Exception:
        pass


def stats():
    """Counters of this process since it started (or was forked).

    Each counts events (a start or a finish), whether they travel as
    classic messages or packed: ``sent``: events handed to libzmq;
    ``dropped``: events refused because the collector is not connected or
    not keeping up; ``reported``: dropped events reported to their
    collector in a packed message's header (its ``client_dropped``);
    ``errors``: events lost to anything else (bad address, bad prefix...);
    ``queued``: events waiting to be sent right now.
    """
    st = _new_state()
    with st.lock:
        return {"sent": st.sent, "dropped": st.dropped, "reported": st.reported,
                "errors": st.errors,
                "queued": sum(_events(b) for b in st.outbox.values())
                + sum(len(ch.records) for ch in list(_channels.values()))}


def socket_count():
    """How many PUSH sockets this process has open (for tests and debugging)."""
    st = _new_state()
    with st.lock:
        return len(st.sockets)


def get_context():
    """This process's zmq context (made after fork, never the parent's)."""
    st = _new_state()
    with st.lock:
        if st.context is None:
            st.context = zmq.Context()
        return st.context


def set_sndhwm(value):
    """Set the SNDHWM of sockets opened from now on (positive, in messages)."""
    global _sndhwm
    value = int(value)
    if value <= 0:
        raise ValueError("SNDHWM must be a positive number of messages, got %d" % value)
    _sndhwm = value


def set_curve(address, keys):
    """Use CURVE ``keys`` (a ``_curve.CurveKeys``, or None for none) for ``address``.

    Applies to the sockets this process (and its future children) opens
    for ``address``; an open socket made with other keys is closed, and the
    next message opens a new one.
    """
    check_address(address)
    if keys is not None and not isinstance(keys, _curve.CurveKeys):
        raise TypeError("keys must be CurveKeys or None, got %s" % type(keys).__name__)
    _curve_by_address[address] = keys
    st = _state
    if st is None or st.pid != os.getpid():
        return
    with st.lock:
        sock = st.sockets.get(address)
        if sock is None or st.curve.get(address) == keys:
            return
        del st.sockets[address]
        st.born.pop(address, None)
        st.curve.pop(address, None)
    try:
        sock.close(linger=0)
    except Exception:
        pass


def set_flush_delay(seconds):
    """Set how long messages wait to be sent in batches (0: send at once)."""
    global _flush_delay
    seconds = float(seconds)
    if not 0.0 <= seconds <= 1.0:
        raise ValueError("the flush delay must be between 0 and 1 second, got %r" % seconds)
    _flush_delay = seconds
    for ch in list(_channels.values()):
        ch.limit = PACK_THRESHOLD if seconds > 0 else 1


def close():
    """Flush, then close this process's sockets. Never waits.

    Registered with ``atexit`` and called from the gunicorn ``worker_exit``
    hook. The sockets get a linger of CLOSE_LINGER_MS so libzmq can still
    send what was just flushed while the process lives; the context is not
    terminated, so nothing waits for that. A later send opens a new socket.
    """
    st = _state
    if st is None or st.pid != os.getpid():
        return
    with st.lock:
        _pack_all_locked(st)
        _flush_all(st)
        for address, box in st.outbox.items():
            _drop(st, address, _events(box))
        st.outbox.clear()
        _report_locked(st)
        st.first_at = None
        sockets = list(st.sockets.values())
        st.sockets.clear()
        st.born.clear()
        st.paused.clear()
    _log_warnings(st)
    for sock in sockets:
        try:
            sock.close(linger=CLOSE_LINGER_MS)
        except Exception:
            pass


#: At exit, how long the process may wait, at most, for a new socket to
#: connect and for libzmq to deliver what was flushed last.
EXIT_WAIT_SECONDS = 0.2


def _at_exit():
    """Flush and close; give libzmq up to EXIT_WAIT_SECONDS to deliver.

    The context is terminated in a daemon thread that is waited for at most
    EXIT_WAIT_SECONDS, so exiting never hangs (a socket left open elsewhere
    would make the termination wait forever).
    """
    st = _state
    if st is None or st.pid != os.getpid():
        return
    deadline = _monotonic() + EXIT_WAIT_SECONDS
    try:
        # A new socket may still be connecting: retry for a moment.
        while True:
            with st.lock:
                _pack_all_locked(st)
                _flush_all_locked(st)
                done = st.first_at is None
            if done or _monotonic() >= deadline:
                break
            time.sleep(0.005)
    except Exception:
        pass
    close()
    ctx = st.context
    if ctx is None:
        return
    try:
        t = threading.Thread(target=ctx.term, name="gstats-exit", daemon=True)
        t.start()
        t.join(max(0.0, deadline - _monotonic()))
    except Exception:
        pass


atexit.register(_at_exit)
