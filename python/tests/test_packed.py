"""Packed events: what the hooks send by default, and the classic fallback."""

import time

import gstats
import gstats.gunicorn as gg
from gstats import _client

from conftest import (BATCH_HEADER, drain, nothing_more, recv, recv_raw, unpack,
                      wait_disconnected, wait_until)


class Req:
    def __init__(self, path="/"):
        self.path = path


class Resp:
    def __init__(self, status_code):
        self.status_code = status_code


def run(h, n, status=200):
    for _ in range(n):
        req = Req()
        h.pre_request(None, req)
        h.post_request(None, req, {}, Resp(status))


def test_hooks_pack_events_into_one_message(pull):
    sock, addr = pull
    h = gg.Hooks(address=addr, prefix="shop", environ={})
    run(h, 3, status=201)
    frames = recv_raw(sock)
    assert len(frames) == 1 and frames[0].startswith(BATCH_HEADER)
    events = unpack(frames)
    assert [e[0] for e in events] == [b"shop"] * 6
    assert [len(e) for e in events] == [2, 3] * 3
    assert all(e[1] == b"" for e in events[::2])
    assert all(e[2] == b"201" and float(e[1]) >= 0 for e in events[1::2])
    assert nothing_more(sock)


def test_flush_delay_bounds_the_wait(pull):
    sock, addr = pull
    h = gg.Hooks(address=addr, prefix="shop", environ={})
    req = Req()
    h.pre_request(None, req)
    # Nothing more comes and nobody calls flush(): the flusher sends the
    # event by itself (within the flush delay, 10 ms, on an idle machine;
    # the bound is one only a flusher that never sends would reach).
    recv_raw(sock, timeout=10)
    h.post_request(None, req, {}, Resp(200))
    assert len(unpack(recv_raw(sock))) == 1


def test_many_events_split_into_frames_within_the_size_limit(pull):
    sock, addr = pull
    before = gstats.client_stats()
    h = gg.Hooks(address=addr, prefix="p" * 100, environ={})
    n = 2000
    run(h, n)
    _client.flush()
    got = 0
    while got < 2 * n:
        frames = recv_raw(sock)
        assert len(frames) == 1 and len(frames[0]) <= _client.MAX_PACKED_BYTES
        got += len(unpack(frames))
    assert got == 2 * n and nothing_more(sock)
    after = gstats.client_stats()
    assert after["sent"] - before["sent"] == 2 * n
    assert after["dropped"] == before["dropped"] and after["queued"] == 0


def test_classic_when_asked(pull):
    sock, addr = pull
    h = gg.Hooks(address=addr, prefix="shop", environ={"GSTATS_PACK": "0"})
    assert not h.pack
    run(h, 1, status=500)
    assert recv_raw(sock) == [b"shop", b""]
    prefix, ms, status = recv_raw(sock)
    assert (prefix, status) == (b"shop", b"500") and float(ms) >= 0
    assert nothing_more(sock)


def test_prefixes_that_cannot_be_packed_go_classic(pull):
    sock, addr = pull
    h = gg.Hooks(address=addr, prefix="tab\there", environ={})
    run(h, 1)
    assert recv_raw(sock) == [b"tab\there", b""]
    assert recv_raw(sock)[::2] == [b"tab\there", b"200"]

    def choose(req):
        return "new\nline" if req.path == "/odd" else "fine"

    h = gg.Hooks(address=addr, prefix_func=choose, environ={})
    for path in ("/odd", "/"):
        req = Req(path)
        h.pre_request(None, req)
        h.post_request(None, req, {}, Resp(200))
    _client.flush()
    seen = sorted(tuple(recv(sock)[:2:1][:1]) for _ in range(4))
    assert seen == [(b"fine",), (b"fine",), (b"new\nline",), (b"new\nline",)]


def test_bad_pack_setting_is_refused():
    try:
        gg.Hooks(address="tcp://127.0.0.1:1", environ={"GSTATS_PACK": "maybe"})
    except ValueError as exc:
        assert "GSTATS_PACK" in str(exc)
    else:
        raise AssertionError("GSTATS_PACK=maybe was accepted")


def test_collector_gone_drops_and_counts_events(collector_factory):
    c = collector_factory()
    h = gg.Hooks(address=c.stats_addr, prefix="gone", environ={})
    _client.connect(c.stats_addr)
    run(h, 10)
    c.wait_counts("gone", 10, 10)
    c.stop()
    # libzmq has seen the collector go: what follows is refused, not handed
    # to the dying connection.
    wait_disconnected(c.stats_addr)
    before = gstats.client_stats()
    t0 = time.monotonic()
    run(h, 500)
    took = time.monotonic() - t0
    # Nothing waits for the collector: a send that did would never return.
    assert took < 10.0, took
    _client.flush()
    wait_until(lambda: gstats.client_stats()["queued"] == 0, 30, message="nothing queued")
    after = gstats.client_stats()
    lost = (after["dropped"] - before["dropped"]) + (after["sent"] - before["sent"])
    assert after["errors"] == before["errors"]
    assert lost == 1000  # every event is either dropped or was handed to libzmq
    assert after["dropped"] - before["dropped"] > 0
