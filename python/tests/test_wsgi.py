"""The status WSGI application: allowed addresses, answers, the collector."""

import json
import time

import pytest

import gstats.wsgi as gw

from conftest import free_port, wait_until


# --- GSTATS_ALLOWED_IPS ------------------------------------------------------

@pytest.mark.parametrize("value, allowed, refused", [
    # gstats 0.6: IPv4 addresses separated by ':'
    ("127.0.0.1", ["127.0.0.1", "::ffff:127.0.0.1"], ["127.0.0.2", "::1", "10.0.0.1"]),
    ("127.0.0.1:10.1.2.3", ["127.0.0.1", "10.1.2.3"], ["10.1.2.4"]),
    ("127.0.0.1:10.0.0.0/8", ["127.0.0.1", "10.9.9.9"], ["11.0.0.1"]),
    # commas, spaces, IPv6, CIDR, brackets
    ("127.0.0.1, ::1", ["127.0.0.1", "::1", "[::1]"], ["::2"]),
    ("10.0.0.0/8 192.168.1.0/24", ["10.200.0.1", "192.168.1.77"], ["192.168.2.1"]),
    ("fd00::/8,[2001:db8::1]", ["fd12:3456::1", "2001:db8::1"], ["2001:db8::2"]),
    ("fe80::/10", ["fe80::1%eth0"], ["fd00::1"]),
    ("::", ["::"], ["::1"]),
    ("0.0.0.0/0,::/0", ["8.8.8.8", "2001:4860::8888"], ["", "not-an-ip", None]),
    # IPv4-mapped entries are their IPv4 networks, as mapped clients are
    ("::ffff:10.0.0.0/104", ["10.3.3.3", "::ffff:10.3.3.3"], ["11.0.0.1", "::1"]),
    ("::ffff:1.2.3.4", ["1.2.3.4"], ["1.2.3.5"]),
])
def test_allowed_ips(value, allowed, refused):
    allow = gw.parse_allowed_ips(value)
    for addr in allowed:
        assert allow.allows(addr), (value, addr)
    for addr in refused:
        assert not allow.allows(addr), (value, addr)


@pytest.mark.parametrize("value, bad", [
    ("localhost", "'localhost'"),
    ("127.0.0.1,10.0.0.300", "'10.0.0.300'"),
    ("127.0.0.1:foo", "'foo'"),
    ("10.0.0.0/33", "'10.0.0.0/33'"),
    ("1.2.3.4:::1", "'1.2.3.4:::1'"),
])
def test_bad_allowed_ips_are_named(value, bad):
    with pytest.raises(ValueError) as e:
        gw.parse_allowed_ips(value)
    message = str(e.value)
    assert message.startswith("GSTATS_ALLOWED_IPS: ") and bad in message
    assert "separated by commas" in message


def test_allowed_ips_as_a_list_and_empty():
    assert gw.parse_allowed_ips(["127.0.0.1", "::1"]).allows("::1")
    assert len(gw.parse_allowed_ips("")) == 0
    assert not gw.parse_allowed_ips("").allows("127.0.0.1")


# --- the application, called directly ---------------------------------------

def call(app, path="/_status", remote="127.0.0.1", method="GET"):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"PATH_INFO": path, "REQUEST_METHOD": method}
    if remote is not None:
        environ["REMOTE_ADDR"] = remote
    body = b"".join(app(environ, start_response))
    assert int(seen["headers"]["Content-Length"]) == len(body) or method == "HEAD"
    return seen["status"], seen["headers"], body


def dead_comm():
    return "tcp://127.0.0.1:%d" % free_port()


@pytest.mark.parametrize("remote", ["10.0.0.1", "::2", "", None, "garbage"])
def test_refused_clients_get_403_with_the_original_text(remote):
    app = gw.Application(None, dead_comm(), "127.0.0.1,::1", timeout=0.2)
    status, headers, body = call(app, remote=remote)
    assert status == "403 Forbidden"
    assert body == b"You are not allowed to see this!"
    # Refused before anything else: even unknown paths.
    assert call(app, "/nope", remote=remote)[0] == "403 Forbidden"


def test_unknown_path_is_404():
    app = gw.Application(None, dead_comm(), "127.0.0.1")
    assert call(app, "/nope")[0] == "404 Not Found"
    assert call(app, "/")[0] == "404 Not Found"


def test_status_from_a_real_collector(collector):
    collector_prefix_traffic(collector)
    app = gw.Application(None, collector.comm_addr, ["127.0.0.1", "::1"], timeout=5)
    for path, remote in [("/_status", "127.0.0.1"), ("/_status/", "::1"),
                         ("/stats", "::ffff:127.0.0.1")]:
        status, headers, body = call(app, path, remote)
        assert status == "200 OK"
        assert headers["Content-Type"] == "application/json"
        stats = json.loads(body)
        assert stats["web"]["started"] == 3 and stats["web"]["finished"] == 2
        assert stats["web"]["processing_time"]["avg"] == pytest.approx(15.0)
    status, _, body = call(app, "/rtimes")
    assert status == "200 OK" and sorted(json.loads(body)["web"]) == [10.0, 20.0]
    status, headers, body = call(app, "/_status", method="HEAD")
    assert status == "200 OK" and body == b"" and int(headers["Content-Length"]) > 0


def collector_prefix_traffic(collector):
    import zmq
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(collector.stats_addr)
    for frames in ([b"web", b""], [b"web", b""], [b"web", b""],
                   [b"web", b"10", b"200"], [b"web", b"20.0", b"404"]):
        push.send_multipart(frames)
    push.close()
    ctx.term()
    collector.wait_counts("web", 3, 2)


def test_collector_down_gives_503_quickly_then_recovers(collector_factory):
    port = free_port()
    comm = "tcp://127.0.0.1:%d" % port
    app = gw.Application(None, comm, "127.0.0.1", timeout=0.3)
    for _ in range(2):  # the socket is replaced after each timeout
        t0 = time.monotonic()
        status, headers, body = call(app)
        took = time.monotonic() - t0
        assert status == "503 Service Unavailable"
        assert b"did not answer within 0.3 s" in body and comm.encode() in body
        # Not a latency figure: an answer that waited for the collector
        # would never come.
        assert took < 10.0, took
    collector = collector_factory(comm_addr=comm)
    # Recovers: the same application answers from the collector, once its
    # new socket has connected (a busy machine can take longer than the
    # 0.3 s timeout for the first try: that answer is a 503 and the next
    # try gets a new socket).
    def answered():
        status, _, body = call(app)
        return status == "200 OK" and json.loads(body) == {}
    wait_until(answered, 30, 0.05, "the application to read the collector's STATS")
    collector.stop()
    assert call(app)[0] == "503 Service Unavailable"


def test_settings_from_environment(collector):
    app = gw.from_environ({"GSTATS_COMMS_ADDR": collector.comm_addr,
                           "GSTATS_ALLOWED_IPS": "10.0.0.1:127.0.0.1", "GSTATS_TIMEOUT": "30"})
    assert app.gstats_addr == collector.comm_addr and app.control.timeout == 30.0
    assert call(app)[0] == "200 OK"
    assert call(app, remote="10.0.0.1")[0] == "200 OK"
    assert call(app, remote="10.0.0.2")[0] == "403 Forbidden"
    # GSTATS_COMM_ADDR (the documented name) wins over GSTATS_COMMS_ADDR.
    app = gw.from_environ({"GSTATS_COMM_ADDR": collector.comm_addr,
                           "GSTATS_COMMS_ADDR": "tcp://127.0.0.1:1"})
    assert app.gstats_addr == collector.comm_addr
    # Defaults: the original control address, loopback only.
    app = gw.from_environ({})
    assert app.gstats_addr == "tcp://127.0.0.1:2345"
    assert app.allowed.allows("127.0.0.1") and app.allowed.allows("::1")
    assert not app.allowed.allows("10.0.0.1")


@pytest.mark.parametrize("env, message", [
    ({"GSTATS_ALLOWED_IPS": "127.0.0.1,nope"}, "GSTATS_ALLOWED_IPS: 'nope'"),
    ({"GSTATS_COMM_ADDR": "localhost:2345"},
     "GSTATS_COMM_ADDR 'localhost:2345' is not a ZeroMQ address"),
    ({"GSTATS_TIMEOUT": "soon"}, "GSTATS_TIMEOUT='soon'"),
    ({"GSTATS_TIMEOUT": "0"}, "more than 0"),
])
def test_bad_environment_fails_clearly(env, message):
    with pytest.raises(ValueError, match=message):
        gw.from_environ(env)


def test_answer_that_is_not_json_is_502(collector):
    # The collector answers ERROR (not JSON) to unknown commands.
    app = gw.Application(None, collector.comm_addr, "127.0.0.1", timeout=30)
    app.ROUTES = dict(app.ROUTES, bogus=b"BOGUS")
    status, _, body = call(app, "/bogus")
    assert status == "502 Bad Gateway" and b"ERROR" in body


def test_original_module_names():
    assert isinstance(gw.app, gw.Application)
    assert gw.gstats_control == gw.app.gstats_addr
    assert isinstance(gw.allowed_ips, list)
    assert gw.context_factory()() is gw.get_context()


# --- served by real gunicorn -------------------------------------------------

def without_rate(stats):
    for prefix in stats.values():
        assert isinstance(prefix.pop("rate"), float)
    return stats


@pytest.mark.parametrize("worker_class", ["sync", "gevent"])
def test_served_by_gunicorn(collector, gunicorn, worker_class):
    collector_prefix_traffic(collector)
    g = gunicorn(app="gstats.wsgi:app", worker_class=worker_class, ready_path="/_status",
                 env={"GSTATS_COMMS_ADDR": collector.comm_addr, "GSTATS_ALLOWED_IPS": "127.0.0.1",
                      "GSTATS_TIMEOUT": "30"})
    status, body = g.get("/_status")
    assert status == 200
    # "rate" is per second of window time, so it moves between two calls.
    assert without_rate(json.loads(body)) == without_rate(collector.stats())
    assert g.get("/elsewhere")[0] == 404
    refused = gunicorn(app="gstats.wsgi:app", worker_class=worker_class, ready_path="/_status",
                       ready_status=403, env={"GSTATS_COMM_ADDR": collector.comm_addr,
                                              "GSTATS_ALLOWED_IPS": "10.0.0.0/8:192.168.0.1"})
    assert refused.get("/_status") == (403, b"You are not allowed to see this!")


def test_gevent_worker_keeps_serving_while_waiting_for_the_collector(gunicorn):
    """A gevent worker answers other requests while one waits for the
    collector. The "collector" is a REP socket of the test's own, which
    answers only when the test says so: the test sees the status request
    arrive (it is now waiting), has another request answered, and only then
    lets the status request finish."""
    import threading
    import zmq
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.setsockopt(zmq.LINGER, 0)
    comm = "tcp://127.0.0.1:%d" % free_port()
    rep.bind(comm)
    try:
        # A timeout only a hang reaches: with a blocked hub, the other
        # request is answered only after it, and the status request is 503.
        g = gunicorn(app="gstats.wsgi:app", worker_class="gevent", ready_path="/nope",
                     ready_status=404, env={"GSTATS_COMM_ADDR": comm, "GSTATS_TIMEOUT": "30"})
        result = {}

        def waiting():
            result["status"] = g.get("/_status", timeout=60)
        t = threading.Thread(target=waiting, daemon=True)
        t.start()
        assert rep.poll(30000), "the status request did not reach the collector within 30 s"
        assert rep.recv() == b"STATS"
        # The status request now waits for the reply, which the test holds.
        assert g.get("/nope", timeout=60)[0] == 404
        assert "status" not in result and t.is_alive(), \
            "the other request was answered only once the status request had ended"
        rep.send(b'{"held": {"started": 1}}')
        t.join(30)
        assert result["status"] == (200, b'{"held": {"started": 1}}')
    finally:
        rep.close(linger=0)
        ctx.term()


def test_bad_allowed_ips_stop_gunicorn_with_a_clear_message(tmp_path):
    import subprocess
    from conftest import GUNICORN, SRC_DIR
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC_DIR),
           "GSTATS_ALLOWED_IPS": "127.0.0.1,nope"}
    p = subprocess.run([GUNICORN, "-b", "127.0.0.1:0", "gstats.wsgi:app"],
                       env=env, capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert p.returncode != 0
    assert "GSTATS_ALLOWED_IPS: 'nope' is not an IP address or network" in p.stderr
