"""The client functions against real libzmq sockets on loopback."""

import os
import threading
import time

import pytest
import zmq

import gstats
from gstats import _client

from conftest import drain, free_port, nothing_more, recv, wait_until


def dead_address():
    return "tcp://127.0.0.1:%d" % free_port()


class Req:
    """Stands in for gunicorn's request object."""


@pytest.mark.parametrize("prefix, expected", [
    ("my_app", b"my_app"),
    (b"my_app", b"my_app"),
    ("caf\u00e9", "caf\u00e9".encode()),
    (bytearray(b"ba"), b"ba"),
    ("", b""),
])
def test_prefix_str_or_bytes(pull, prefix, expected):
    sock, addr = pull
    req = Req()
    gstats.start_request(req, collect=True, collector_addr=addr, prefix=prefix)
    assert recv(sock) == [expected, b""]
    gstats.end_request(req, collector_addr=addr, prefix=prefix)
    frames = recv(sock)
    assert frames[0] == expected and len(frames) == 2


def test_end_request_returns_the_milliseconds_it_sent(pull):
    sock, addr = pull
    req = Req()
    gstats.start_request(req, collect=True, collector_addr=addr, prefix=b"t")
    time.sleep(0.05)
    ms = gstats.end_request(req, collector_addr=addr, prefix=b"t")
    assert recv(sock) == [b"t", b""]
    prefix, sent = recv(sock)
    assert isinstance(ms, float)
    # Milliseconds: at least the 50 slept (not 0.05 s), and not a number
    # only seconds or microseconds would give (10 s would take a hang).
    assert 50.0 <= ms < 10000.0
    assert sent == b"%.3f" % ms  # fractional milliseconds, not %i


def test_original_defaults_and_collector_keyword(pull):
    sock, addr = pull
    req = Req()
    # The original README spelled the keyword "collector"; the prefix
    # defaulted to my_app.
    gstats.start_request(req, collect=True, collector=addr)
    gstats.end_request(req, collector=addr)
    assert recv(sock) == [b"my_app", b""]
    assert recv(sock)[0] == b"my_app"
    assert gstats.DEFAULT_COLLECTOR_ADDR == "tcp://127.0.0.2:2345"


def test_collect_false_sends_only_the_finish(pull):
    sock, addr = pull
    req = Req()
    gstats.start_request(req, collector_addr=addr, prefix=b"p")
    assert nothing_more(sock)
    assert gstats.end_request(req, collector_addr=addr, prefix=b"p") >= 0.0
    frames = recv(sock)
    assert frames[0] == b"p" and frames[1] != b""


def test_end_without_start_sends_nothing(pull):
    sock, addr = pull
    assert gstats.end_request(Req(), collector_addr=addr, prefix=b"p") is None
    req = Req()
    gstats.start_request(req, collector_addr=addr)
    assert gstats.end_request(req, collector_addr=addr) is not None
    recv(sock)
    # A second end for the same request is not a second request.
    assert gstats.end_request(req, collector_addr=addr) is None
    assert nothing_more(sock)


def test_status_frame(pull):
    sock, addr = pull
    req = Req()
    gstats.start_request(req, collector_addr=addr, prefix=b"s")
    gstats.end_request(req, collector_addr=addr, prefix=b"s", status=404)
    frames = recv(sock)
    assert len(frames) == 3 and frames[0] == b"s" and frames[2] == b"404"


@pytest.mark.parametrize("req", ["a string", 12345, ("a", "tuple")])
def test_requests_that_take_no_attribute(pull, req):
    sock, addr = pull
    gstats.start_request(req, collect=True, collector_addr=addr, prefix=b"h")
    assert hash(req) in gstats.requests
    ms = gstats.end_request(req, collector_addr=addr, prefix=b"h")
    assert ms is not None and ms >= 0.0
    assert hash(req) not in gstats.requests
    assert recv(sock) == [b"h", b""]
    assert recv(sock)[0] == b"h"


def test_unfinished_requests_table_is_bounded(pull):
    _, addr = pull
    for i in range(gstats._REQUESTS_MAX + 500):
        gstats.start_request("r%d" % i, collector_addr=addr)
    assert len(gstats.requests) == gstats._REQUESTS_MAX
    gstats.requests.clear()


def test_overlapping_requests_are_timed_independently(pull, monkeypatch):
    # A clock the test moves: every duration is exact, whatever the load.
    now = [1000.0]
    monkeypatch.setattr(gstats, "_perf_counter", lambda: now[0])
    sock, addr = pull
    slow, fast = Req(), Req()
    gstats.start_request(slow, collector_addr=addr)
    now[0] += 0.5
    gstats.start_request(fast, collector_addr=addr)
    now[0] += 0.125
    fast_ms = gstats.end_request(fast, collector_addr=addr)
    now[0] += 0.25
    slow_ms = gstats.end_request(slow, collector_addr=addr)
    assert (fast_ms, slow_ms) == (125.0, 875.0)
    assert [recv(sock)[1] for _ in range(2)] == [b"125.000", b"875.000"]


def nothing_queued(timeout=_client.HOLD_SECONDS + 30):
    wait_until(lambda: gstats.client_stats()["queued"] == 0, timeout, 0.01,
               "every outbox to be empty")


def test_nothing_listening_drops_and_counts_without_raising():
    nothing_queued()
    addr = dead_address()
    before = gstats.client_stats()
    req = Req()
    n = 2000
    done = threading.Event()

    def run():
        for _ in range(n):
            gstats.start_request(req, collect=True, collector_addr=addr, prefix=b"x")
            gstats.end_request(req, collector_addr=addr, prefix=b"x", status=200)
        done.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    # A blocking send would never finish; 2000 non-blocking ones take milliseconds.
    assert done.wait(60), "sending to an absent collector blocked"
    # At most one outbox of messages waits for the new socket's connection...
    assert gstats.client_stats()["queued"] <= _client.OUTBOX_MAX
    # ...and is dropped once the socket is HOLD_SECONDS old.
    nothing_queued()
    after = gstats.client_stats()
    assert after["sent"] == before["sent"]
    assert after["errors"] == before["errors"]
    assert after["dropped"] - before["dropped"] == 2 * n


def test_messages_queued_before_the_collector_listens_are_delivered(monkeypatch):
    # The collector appears shortly after a new socket's first messages:
    # they are retried and sent once the connection is up. "Shortly" is
    # HOLD_SECONDS (1 s), which a busy machine can take just to bind and
    # connect: here the hold lasts 60 s, so only the retrying is tested.
    monkeypatch.setattr(_client, "HOLD_SECONDS", 60.0)
    addr = dead_address()
    req = Req()
    gstats.start_request(req, collect=True, collector_addr=addr, prefix=b"early")
    assert gstats.end_request(req, collector_addr=addr, prefix=b"early") is not None
    assert len(_client._state.outbox[addr]) == 2
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.bind(addr)
        assert recv(sock) == [b"early", b""]
        assert recv(sock)[0] == b"early"
        wait_until(lambda: not _client._state.outbox.get(addr), 30, message="an empty outbox")
    finally:
        sock.close(linger=0)
        ctx.term()


def test_messages_for_an_absent_collector_are_dropped_after_the_hold():
    nothing_queued()
    addr = dead_address()
    before = gstats.client_stats()
    assert _client.send2(addr, b"late", b"") is True  # queued
    assert gstats.client_stats()["queued"] == 1
    nothing_queued()
    after = gstats.client_stats()
    assert after["dropped"] == before["dropped"] + 1 and after["sent"] == before["sent"]


def test_messages_go_in_batches_and_flush_sends_at_once(pull):
    sock, addr = pull
    for i in range(5):
        assert _client.send2(addr, b"batch", b"%d" % i)
    assert gstats.client_stats()["queued"] == 5  # waiting for the flush delay
    gstats.flush()
    assert gstats.client_stats()["queued"] == 0
    assert [recv(sock)[1] for _ in range(5)] == [b"0", b"1", b"2", b"3", b"4"]
    # Without flush() they leave after the flush delay, in order.
    for i in range(3):
        _client.send3(addr, b"later", b"%d" % i, b"200")
    assert [recv(sock)[1] for _ in range(3)] == [b"0", b"1", b"2"]


def test_flush_delay_zero_sends_at_once(pull):
    sock, addr = pull
    try:
        _client.set_flush_delay(0)
        _client.send2(addr, b"now", b"")
        assert gstats.client_stats()["queued"] == 0
        assert recv(sock) == [b"now", b""]
    finally:
        _client.set_flush_delay(_client.DEFAULT_FLUSH_DELAY)
    with pytest.raises(ValueError):
        _client.set_flush_delay(5)


def test_slow_collector_never_blocks_and_memory_is_bounded():
    # A PULL socket that never reads: the queue fills up to the HWMs and the
    # rest is dropped instead of blocking or growing.
    nothing_queued()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 10)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    addr = "tcp://127.0.0.1:%d" % port
    try:
        assert _client.connect(addr)
        time.sleep(_client.HOLD_SECONDS)  # past the new socket's hold period
        big = b"q" * 1000  # fills the kernel's socket buffers sooner
        done = threading.Event()
        counts = []

        def run():
            for _ in range(40):
                before = gstats.client_stats()
                for _ in range(25000):
                    _client.send2(addr, big, b"1.000")
                gstats.flush()
                after = gstats.client_stats()
                counts.append({k: after[k] - before[k] for k in after})
                if counts[-1]["sent"] == 0:
                    break
            done.set()

        threading.Thread(target=run, daemon=True).start()
        assert done.wait(120), "sending to a collector that does not read blocked"
        # Once libzmq's queue (SNDHWM) and the TCP buffers are full, every
        # further message is dropped: nothing more is kept anywhere.
        assert counts[-1]["dropped"] == 25000 and counts[-1]["sent"] == 0, counts
        assert sum(c["sent"] for c in counts) < 25000, counts
        assert all(c["errors"] == 0 and c["queued"] == 0 for c in counts), counts
    finally:
        sock.close(linger=0)
        ctx.term()


def test_bad_address_and_bad_prefix_are_counted_not_raised(monkeypatch):
    # "For a while" is BAD_ADDRESS_PAUSE_SECONDS (1 s), which a busy machine
    # could spend between two lines: a minute here.
    monkeypatch.setattr(_client, "BAD_ADDRESS_PAUSE_SECONDS", 60.0)
    before = gstats.client_stats()
    gstats.start_request(Req(), collect=True, collector_addr="not an address")
    gstats.flush()
    req = Req()
    gstats.start_request(req, collect=True, collector_addr=dead_address(), prefix=42)
    assert gstats.end_request(req, collector_addr=dead_address(), prefix=42) is not None
    after = gstats.client_stats()
    assert after["errors"] - before["errors"] == 3
    # The bad address is not tried again for a while: counted at once.
    gstats.start_request(Req(), collect=True, collector_addr="not an address")
    assert gstats.client_stats()["errors"] - before["errors"] == 4


def test_fork_gets_its_own_socket(pull):
    sock, addr = pull
    req = Req()
    gstats.start_request(req, collect=True, collector_addr=addr, prefix=b"parent")
    assert recv(sock) == [b"parent", b""]
    parent_socket = _client._state.sockets[addr]
    parent_context = _client._state.context
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report what it sees, never return into pytest
        code = 1
        try:
            st = _client._state
            fresh = (addr not in st.sockets and st.context is None and st.pid == os.getpid()
                     and gstats.client_stats() == {"sent": 0, "dropped": 0, "reported": 0,
                                                   "errors": 0, "queued": 0})
            _client.send2(addr, b"child", b"")
            # Wait until the child's new socket is connected and sends.
            deadline = time.monotonic() + 30
            while gstats.client_stats()["sent"] < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            new = _client._state.sockets.get(addr)
            ok = fresh and new is not None and new is not parent_socket \
                and _client._state.context is not parent_context \
                and gstats.client_stats()["sent"] >= 1
            os.write(w, b"ok" if ok else b"bad")
            # os._exit skips atexit: let the message leave as exit would.
            _client._at_exit()
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        verdict = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert verdict == b"ok"
    assert recv(sock) == [b"child", b""]
    drain(sock)
    # The parent's socket still works after the child exited.
    assert _client._state.sockets[addr] is parent_socket
    gstats.start_request(req, collect=True, collector_addr=addr, prefix=b"parent")
    assert recv(sock) == [b"parent", b""]


def test_threads_share_one_socket(pull):
    sock, addr = pull
    n_threads, per_thread = 8, 200
    errors = []
    before = gstats.client_stats()

    def run(i):
        try:
            for _ in range(per_thread):
                r = Req()
                gstats.start_request(r, collect=True, collector_addr=addr, prefix=b"t%d" % i)
                gstats.end_request(r, collector_addr=addr, prefix=b"t%d" % i)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert not errors
    # Every message libzmq took arrives, whole. On a busy machine libzmq's
    # queue (SNDHWM) may fill before its I/O thread empties it: those
    # messages are dropped and counted (or, while the socket is less than
    # HOLD_SECONDS old, kept and retried), never lost without a trace.

    def handed_over():
        gstats.flush()
        return gstats.client_stats()["queued"] == 0
    wait_until(handed_over, _client.HOLD_SECONDS + 30, 0.01, "every message handed over")
    after = gstats.client_stats()
    sent = after["sent"] - before["sent"]
    dropped = after["dropped"] - before["dropped"]
    assert after["errors"] == before["errors"]
    assert sent + dropped == n_threads * per_thread * 2 and sent > 0, (before, after)
    counts = {}
    for _ in range(sent):
        frames = recv(sock, timeout=30)
        kind = "start" if frames[1] == b"" else "end"
        counts[(frames[0], kind)] = counts.get((frames[0], kind), 0) + 1
    assert nothing_more(sock)
    assert set(counts) <= {(b"t%d" % i, k) for i in range(n_threads) for k in ("start", "end")}
    assert all(n <= per_thread for n in counts.values()), counts
    if dropped == 0:
        assert counts == {(b"t%d" % i, k): per_thread
                          for i in range(n_threads) for k in ("start", "end")}
    assert _client.socket_count() >= 1
    assert list(_client._state.sockets).count(addr) == 1


def test_close_flushes_then_send_reopens(pull, monkeypatch):
    # The closed socket's linger (CLOSE_LINGER_MS, 100 ms) is how long
    # libzmq's I/O thread may still send: a busy machine can leave it
    # unscheduled that long, so it is a minute here.
    monkeypatch.setattr(_client, "CLOSE_LINGER_MS", 60000)
    sock, addr = pull
    assert _client.send2(addr, b"c", b"")
    gstats.close()  # flushes what was queued first
    assert addr not in _client._state.sockets
    assert recv(sock) == [b"c", b""]
    assert _client.send2(addr, b"c", b"1.0")
    assert recv(sock) == [b"c", b"1.0"]
    assert addr in _client._state.sockets


def test_context_helpers():
    ctx = gstats.get_context()
    assert isinstance(ctx, zmq.Context)
    assert gstats.context_factory()() is ctx


SCRIPT = """
import sys
sys.path.insert(0, sys.argv[2])
import gstats
if len(sys.argv) > 3:
    gstats._client.EXIT_WAIT_SECONDS = float(sys.argv[3])
class Req: pass
req = Req()
gstats.start_request(req, collect=True, collector_addr=sys.argv[1], prefix="script")
gstats.end_request(req, collector_addr=sys.argv[1], prefix="script", status=200)
"""


def test_a_short_script_delivers_at_exit_and_never_hangs(collector):
    import subprocess
    from conftest import PYTHON, SRC_DIR
    # The collector is up: the messages of a script that exits at once
    # arrive. The exit waits (EXIT_WAIT_SECONDS, 0.2 s) for the new socket
    # to connect; here it may wait 30 s, so that a busy machine, slow to
    # connect, does not lose the messages: the exit still ends as soon as
    # they are delivered.
    p = subprocess.run([PYTHON, "-c", SCRIPT, collector.stats_addr, str(SRC_DIR), "30"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    stats = collector.wait_counts("script", 1, 1)
    assert stats["status"]["2xx"] == 1
    # Nobody listens: the script still exits (bounded wait for the new
    # socket's connection: the default EXIT_WAIT_SECONDS). The bound is one
    # only a hang reaches (an interpreter starting on a busy machine can
    # take seconds).
    t0 = time.monotonic()
    p = subprocess.run([PYTHON, "-c", SCRIPT, dead_address(), str(SRC_DIR)],
                       capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert took < 20.0, took


def test_a_fork_the_hooks_missed_is_caught_before_sending(pull):
    # As if this process had been forked without os.fork's hooks: the state
    # says another PID. The next batch notices, drops the state (and what it
    # queued) instead of using the "parent's" socket, and starts afresh.
    sock, addr = pull
    stale = _client._state
    stale_socket = stale.sockets[addr]
    stale.pid = -1
    try:
        _client.send2(addr, b"lost", b"")
        gstats.flush()
        assert _client._state is not stale
        assert _client.send2(addr, b"fresh", b"")
        gstats.flush()  # opens the new socket
        fresh = _client._state
        assert fresh.pid == os.getpid() and fresh.sockets[addr] is not stale_socket
        assert recv(sock) == [b"fresh", b""]
    finally:
        stale.pid = os.getpid()
