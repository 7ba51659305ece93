"""Drops counted on both sides: packed messages report, in their header, the
events the process dropped, and gstats-collectd counts them as
client_dropped."""

import signal
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

import gstats
import gstats.gunicorn as gg
from gstats import _client

from conftest import free_port, header_dropped, is_packed, run_requests as run, unpack, wait_until


def delta(before):
    now = gstats.client_stats()
    return {k: now[k] - before[k] for k in ("sent", "dropped", "reported", "errors")}


def settle(timeout=10):
    """Hand everything queued to libzmq; wait until nothing is queued."""
    def done():
        _client.flush()
        return gstats.client_stats()["queued"] == 0
    wait_until(done, timeout, 0.01, "nothing queued")


class Reader:
    """Reads a PULL socket: events, and the drops packed headers report."""

    def __init__(self, sock):
        self.sock = sock
        self.events = 0
        self.dropped = 0
        self.reports_only = 0  # packed messages with drops and no event
        self.classic = 0

    def read(self, quiet=0.05):
        while self.sock.poll(int(quiet * 1000)):
            frames = self.sock.recv_multipart()
            n = len(unpack(frames))
            self.events += n
            if not is_packed(frames):
                self.classic += 1
                continue
            d = header_dropped(frames)
            self.dropped += d
            if d and not n:
                self.reports_only += 1
        return self


def small_pull():
    """A PULL socket that holds little: one message, a 4 KiB kernel buffer."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1)
    sock.setsockopt(zmq.RCVBUF, 4096)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, "tcp://127.0.0.1:%d" % port


def test_drops_are_reported_without_further_events():
    sock, addr = small_pull()
    _client.set_sndhwm(1)  # for the socket this test's address opens
    try:
        h = gg.Hooks(address=addr, prefix="flood", environ={})
        r = Reader(sock)

        def probe():
            run(h, 1)
            _client.flush()
            return r.read().events
        wait_until(probe, 30, 0.05, "the hooks' socket to connect")
        settle()
        before = gstats.client_stats()

        # Flood without reading until a whole burst is dropped: the socket,
        # the kernel's buffers and the reader's queue are full.
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "the socket still takes events: %r" % delta(before)
            burst = gstats.client_stats()
            run(h, 500)
            settle()
            if gstats.client_stats()["sent"] == burst["sent"]:
                break
        d = delta(before)
        assert d["dropped"] > 0 and d["reported"] < d["dropped"]

        # Read, and send nothing more: the flusher reports the drops in a
        # message of its own within REPORT_SECONDS.
        def reported():
            r.read()
            return r.dropped == delta(before)["dropped"]
        wait_until(reported, 30 + _client.REPORT_SECONDS, 0.05,
                   "the drops to be reported (%r, read %d)" % (delta(before), r.dropped))
        d = delta(before)
        assert d["reported"] == d["dropped"] and d["errors"] == 0
        assert r.reports_only >= 1
        assert r.events >= d["sent"]  # the probes were sent before ``before``
    finally:
        _client.set_sndhwm(_client.DEFAULT_SNDHWM)
        sock.close(linger=0)


def drop_some(h, before, flush=False):
    """Runs requests through h until some events were dropped: with no
    collector listening, a new socket drops after HOLD_SECONDS."""
    deadline = time.monotonic() + _client.HOLD_SECONDS + 30
    while delta(before)["dropped"] == 0:
        assert time.monotonic() < deadline, delta(before)
        run(h, 10)
        time.sleep(0.01)
        if flush:
            _client.flush()


def test_next_packed_message_carries_the_drops(monkeypatch):
    addr = "tcp://127.0.0.1:%d" % free_port()
    h = gg.Hooks(address=addr, prefix="carried", environ={})
    settle()
    before = gstats.client_stats()
    drop_some(h, before)
    settle()
    # The flusher's own reports (refused: nothing listens) are not retried
    # for the rest of the test, so only a message with events can report.
    # The flusher may be waiting out the old REPORT_SECONDS: wake it, and
    # wait until it went idle again (it clears its wake-up event then,
    # having tried its report while nothing listens); its next wait is 60 s.
    monkeypatch.setattr(_client, "REPORT_SECONDS", 60.0)
    st = _client._state
    st.wake.set()
    wait_until(lambda: not st.wake.is_set(), 30, 0.01, "the flusher to go idle")
    # Watch the hooks' own socket: it can send once its handshake is done.
    with st.lock:
        monitor = st.sockets[addr].get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(addr)
    try:
        # The hooks' socket reconnects by itself; send once it has.
        assert monitor.poll(30000), "the hooks' socket did not reconnect within 30 s"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
        run(h, 5)
        settle()
        r = Reader(sock)
        wait_until(lambda: r.read().events == 10, 30, 0.05, "the 10 events")
        d = delta(before)
        assert d["reported"] == d["dropped"] and r.dropped == d["dropped"]
        assert r.reports_only == 0  # the message with the events carried them
    finally:
        with st.lock:
            if addr in st.sockets:
                st.sockets[addr].disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


def test_classic_messages_never_report():
    addr = "tcp://127.0.0.1:%d" % free_port()
    h = gg.Hooks(address=addr, prefix="classic", pack=False, environ={})
    settle()
    before = gstats.client_stats()
    drop_some(h, before, flush=True)
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(addr)
    try:
        r = Reader(sock)

        def arrived():
            run(h, 1)
            _client.flush()
            return r.read().events
        wait_until(arrived, 30, 0.05, "classic messages to arrive")
        time.sleep(_client.REPORT_SECONDS + 0.2)
        r.read()
        assert r.classic == r.events and r.dropped == 0
        assert delta(before)["reported"] == 0
    finally:
        sock.close(linger=0)


def test_collector_counts_what_the_client_dropped(collector_factory, tmp_path):
    """Drops while no collector listens, then while gstats-collectd (with a
    tiny receive_queue) is stopped by SIGSTOP and the hooks flood it: once
    one packed message has gone out, the collector's client_dropped is the
    process's dropped count, and its accepted count the process's sent one."""
    addr = "tcp://127.0.0.1:%d" % free_port()
    _client.set_sndhwm(4)
    col = None
    try:
        h = gg.Hooks(address=addr, prefix="flood", environ={})
        settle()
        before = gstats.client_stats()

        # No collector: after the new socket's HOLD_SECONDS, all dropped.
        deadline = time.monotonic() + _client.HOLD_SECONDS + 10
        while delta(before)["dropped"] < 1000:
            assert time.monotonic() < deadline, delta(before)
            run(h, 100)
            time.sleep(0.002)
        assert delta(before)["sent"] == 0

        col = collector_factory(stats_addr=addr, config="[[inputs.gstats]]\n  receive_queue = 4\n",
                                tmp_dir=tmp_path)

        def counted():
            run(h, 1)
            return col.prefix_stats("flood")["started"] > 0
        wait_until(counted, 30, 0.05, "the hooks' events at the collector")

        # The collector stops reading: flood until libzmq refuses.
        col.signal(signal.SIGSTOP)
        try:
            stopped = delta(before)
            deadline = time.monotonic() + 30
            while delta(before)["dropped"] < stopped["dropped"] + 10000:
                assert time.monotonic() < deadline, \
                    "30 s of flooding a stopped collector: %r" % delta(before)
                run(h, 200)
        finally:
            col.signal(signal.SIGCONT)

        # One packed message that goes out reports every drop.
        def all_reported():
            run(h, 1)
            settle()
            time.sleep(0.02)
            d = delta(before)
            return d["reported"] == d["dropped"]
        wait_until(all_reported, 30, 0.05, "every drop to be reported (%r)" % delta(before))
        d = delta(before)

        def collector_agrees():
            info = col.info()
            return info["accepted"] == d["sent"] and info["client_dropped"] == d["dropped"]
        wait_until(collector_agrees, 30, 0.1,
                   "the collector to count what was sent and dropped (client %r, collector %r)"
                   % (d, {k: col.info()[k] for k in ("accepted", "client_dropped")}))
        info = col.info()
        assert info["rejected_total"] == 0 and d["errors"] == 0
        assert delta(before) == d  # nothing moved after the last report
    finally:
        _client.set_sndhwm(_client.DEFAULT_SNDHWM)
        if col is not None:
            col.stop()
