"""gstats.gunicorn hooks called directly with stand-ins for gunicorn's objects."""

import time

import pytest

import gstats
import gstats.gunicorn as gg
from gstats import _client

from conftest import free_port, nothing_more, recv


class Req:
    def __init__(self, path="/"):
        self.path = path
        self.method = "GET"


class Resp:
    def __init__(self, status_code):
        self.status_code = status_code


class Frozen:
    """A request object that takes no attributes."""
    __slots__ = ()


def test_pre_and_post_send_start_duration_and_status(pull):
    sock, addr = pull
    h = gg.Hooks(address=addr, prefix="shop", environ={})
    req = Req()
    h.pre_request(None, req)
    time.sleep(0.02)
    h.post_request(None, req, {"PATH_INFO": "/"}, Resp(404))
    assert recv(sock) == [b"shop", b""]
    prefix, ms, status = recv(sock)
    assert prefix == b"shop" and status == b"404"
    # Milliseconds: at least the 20 slept (not 0.02 s), and not a number
    # only seconds or microseconds would give (10 s would take a hang).
    assert 20.0 <= float(ms) < 10000.0
    assert ms == b"%.3f" % float(ms)


@pytest.mark.parametrize("resp, expected_len", [
    (None, 2),                 # gunicorn had no response (parse error, pre_request raised)
    (Resp(None), 2),           # start_response was never called
    (Resp(204), 3),
    (Resp(999), 3),            # odd but an int
    (Resp("200 OK"), 2),       # not a number: the duration is still sent
])
def test_post_request_with_odd_responses(pull, resp, expected_len):
    sock, addr = pull
    h = gg.Hooks(address=addr, prefix=b"p", environ={})
    req = Req()
    h.pre_request(None, req)
    h.post_request(None, req, {}, resp)
    recv(sock)
    frames = recv(sock)
    assert len(frames) == expected_len
    if expected_len == 3:
        assert frames[2] == b"%d" % resp.status_code


def test_post_request_without_pre_request_sends_nothing(pull):
    sock, addr = pull
    h = gg.Hooks(address=addr, prefix=b"p", environ={})
    h.post_request(None, Req(), {}, Resp(200))
    assert nothing_more(sock)


class Clock:
    """A perf_counter that moves only when the test says."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.mark.parametrize("pack", [True, False])
def test_overlapping_requests_keep_their_own_start(pull, monkeypatch, pack):
    # The hooks read the clock they find when they are built: a clock the
    # test moves makes every duration exact, whatever the machine's load.
    clock = Clock()
    monkeypatch.setattr(time, "perf_counter", clock)
    sock, addr = pull
    h = gg.Hooks(address=addr, prefix=b"p", send_start=False, pack=pack, environ={})
    monkeypatch.undo()
    slow, fast = Req(), Req()
    h.pre_request(None, slow)
    clock.now += 0.5
    h.pre_request(None, fast)
    clock.now += 0.125
    h.post_request(None, fast, {}, Resp(200))
    clock.now += 0.25
    h.post_request(None, slow, {}, Resp(200))
    assert [recv(sock)[1] for _ in range(2)] == [b"125.000", b"875.000"]


def test_settings_from_environment(pull):
    sock, addr = pull
    h = gg.Hooks(environ={"GSTATS_STATS_ADDR": addr, "GSTATS_PREFIX": "envapp",
                          "GSTATS_SEND_START": "0"})
    assert (h.address, h.prefix, h.send_start, h.enabled) == (addr, b"envapp", False, True)
    req = Req()
    h.pre_request(None, req)
    h.post_request(None, req, {}, Resp(200))
    assert recv(sock)[::2] == [b"envapp", b"200"]  # no start message came first
    assert gg.Hooks(environ={"GSTATS_COLLECTOR_ADDR": addr}).address == addr
    try:
        gg.Hooks(environ={"GSTATS_FLUSH_MS": "0"})
        assert _client._flush_delay == 0.0
        gg.Hooks(environ={"GSTATS_FLUSH_MS": "25"})
        assert _client._flush_delay == 0.025
    finally:
        _client.set_flush_delay(_client.DEFAULT_FLUSH_DELAY)
    d = gg.Hooks(environ={})
    assert (d.address, d.prefix, d.send_start) == ("tcp://127.0.0.2:2345", b"", True)


@pytest.mark.parametrize("env, message", [
    ({"GSTATS_STATS_ADDR": "127.0.0.1:5555"}, "not a ZeroMQ address"),
    ({"GSTATS_SEND_START": "maybe"}, "GSTATS_SEND_START='maybe' is not a boolean"),
    ({"GSTATS_SNDHWM": "lots"}, "GSTATS_SNDHWM='lots'"),
    ({"GSTATS_SNDHWM": "0"}, "positive"),
    ({"GSTATS_DISABLED": "2"}, "GSTATS_DISABLED"),
    ({"GSTATS_FLUSH_MS": "soon"}, "GSTATS_FLUSH_MS='soon'"),
    ({"GSTATS_FLUSH_MS": "5000"}, "between 0 and 1000"),
])
def test_bad_settings_fail_at_configuration_time(env, message):
    with pytest.raises(ValueError, match=message):
        gg.Hooks(environ=env)


def test_disabled_hooks_send_nothing(pull):
    sock, addr = pull
    h = gg.Hooks(address=addr, environ={"GSTATS_DISABLED": "1"})
    req = Req()
    h.pre_request(None, req)
    h.post_request(None, req, {}, Resp(200))
    assert nothing_more(sock)


def test_prefix_func_per_request(pull):
    sock, addr = pull
    before = gstats.client_stats()

    def choose(req):
        if req.path == "/boom":
            raise RuntimeError("no prefix for you")
        return "api" if req.path.startswith("/api/") else b"web"

    h = gg.Hooks(address=addr, prefix="fallback", prefix_func=choose, environ={})
    got = []
    for path in ("/api/x", "/", "/boom"):
        req = Req(path)
        h.pre_request(None, req)
        h.post_request(None, req, {}, Resp(200))
        got.append((recv(sock)[0], recv(sock)[0]))
    assert got == [(b"api", b"api"), (b"web", b"web"), (b"fallback", b"fallback")]
    assert gstats.client_stats()["errors"] == before["errors"] + 1


def test_hooks_never_raise():
    h = gg.Hooks(address="tcp://127.0.0.1:%d" % free_port(), environ={})
    before = gstats.client_stats()
    h.pre_request(None, Frozen())          # cannot note the start time
    h.post_request(None, Frozen(), {}, None)
    h.pre_request(None, None)
    h.post_request(None, None, None, None)
    assert gstats.client_stats()["errors"] >= before["errors"] + 2
    gstats.flush()


def test_configure_changes_already_imported_hooks(pull):
    sock, addr = pull
    from gstats.gunicorn import post_request, pre_request
    old = gg.current()
    try:
        configured = gg.configure(address=addr, prefix="configured")
        assert gg.current() is configured
        req = Req()
        pre_request(None, req)
        post_request(None, req, {}, Resp(201))
        assert recv(sock) == [b"configured", b""]
        assert recv(sock)[::2] == [b"configured", b"201"]
    finally:
        gg._default = old


def test_gunicorn_accepts_the_hooks():
    # gunicorn checks hook arity when it loads the configuration.
    from gunicorn.config import Postfork, PostRequest, PreRequest, WorkerExit
    h = gg.Hooks(address="tcp://127.0.0.1:1", environ={})
    for validate, fn in [
        (PreRequest.validator, gg.pre_request), (PreRequest.validator, h.pre_request),
        (PostRequest.validator, gg.post_request), (PostRequest.validator, h.post_request),
        (Postfork.validator, gg.post_fork), (Postfork.validator, h.post_fork),
        (WorkerExit.validator, gg.worker_exit), (WorkerExit.validator, h.worker_exit),
    ]:
        assert validate(fn) is fn  # accepted as is (right arity)


def test_post_fork_connects_early():
    addr = "tcp://127.0.0.1:%d" % free_port()
    h = gg.Hooks(address=addr, environ={})
    assert addr not in _client._state.sockets
    h.post_fork(None, None)
    assert addr in _client._state.sockets
    h.worker_exit(None, None)
    assert addr not in _client._state.sockets
