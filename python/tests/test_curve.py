"""ZeroMQ CURVE on the hooks' PUSH sockets and on gstats.wsgi's REQ socket:
key files, configuration errors, a CURVE socket of the test's own, and the
real gstats-collectd with curve_secret_key_file and curve_client_keys."""

import json
import os
import subprocess
import threading
import time

import pytest
import zmq

import gstats
import gstats.gunicorn as gg
import gstats.wsgi as gw
from gstats import _client, _curve

from conftest import APP_DIR, Gunicorn, Req, recv, run_requests as run, unpack, wait_until


def write_keys(directory, name):
    """Make a key pair; write NAME.key (public) and NAME.key_secret (both,
    mode 0600) as ZeroMQ certificate files. Returns (public, secret,
    public_path, secret_path)."""
    public, secret = (k.decode() for k in zmq.curve_keypair())
    pub_path = directory / (name + ".key")
    sec_path = directory / (name + ".key_secret")
    pub_path.write_text('# public key %s\nmetadata\n    name = "%s"\ncurve\n'
                        '    public-key = "%s"\n' % (name, name, public))
    fd = os.open(str(sec_path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write('# key pair %s\nmetadata\n    name = "%s"\ncurve\n    public-key = "%s"\n'
                '    secret-key = "%s"\n' % (name, name, public, secret))
    return public, secret, str(pub_path), str(sec_path)


@pytest.fixture
def keys(tmp_path):
    """server, client and stranger key pairs in tmp_path."""
    return {name: write_keys(tmp_path, name) for name in ("server", "client", "stranger")}


PUB, SEC = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"


@pytest.mark.parametrize("text, want", [
    ('curve\n    public-key = "%s"\n' % PUB, (PUB, None)),
    ('# c\nmetadata\n    name = "x"\n    created = "2026"\ncurve\n    public-key = "%s"\n'
     '    secret-key = "%s"\n' % (PUB, SEC), (PUB, SEC)),
    ("%s\n" % PUB, (PUB, None)),
    ("\r\n  %s  \r\n" % PUB, (PUB, None)),
    ('curve\n    public-key = %s\n' % PUB, (PUB, None)),  # unquoted
    ("", "no key found"),
    ('curve\n    secret-key = "%s"\n' % SEC, "a secret-key without its public-key"),
    ('curve\n    public-key = "%s"\n    public-key = "%s"\n' % (PUB, PUB),
     "line 3: public-key is given twice"),
    ('curve\n    public-key = "short"\n', "line 2: public-key: a CURVE key is 40 characters"),
    ('curve\n    public-key = "%s"\n' % ("~" * 40), "line 2: public-key: character 1"),
    ("%s\ncurve\n    public-key = \"%s\"\n" % (PUB, PUB), "a bare key and public-key"),
    ("this is not a key file\n", 'line 1: \'this is not a key file\': want name = "value"'),
])
def test_key_file_format(text, want):
    if isinstance(want, tuple):
        assert _curve.parse_key_file(text) == want
    else:
        with pytest.raises(ValueError) as exc:
            _curve.parse_key_file(text)
        assert want in str(exc.value)


def test_keys_load_from_files_and_settings(keys):
    s_pub, s_sec, s_pub_path, s_sec_path = keys["server"]
    c_pub, c_sec, _, c_sec_path = keys["client"]
    assert _curve.load_public(s_pub) == s_pub
    assert _curve.load_public(s_pub_path) == s_pub
    assert _curve.load_public(s_sec_path) == s_pub  # a secret file gives its public half
    assert _curve.load_secret(c_sec_path) == (c_pub, c_sec)
    k = _curve.resolve(s_pub_path, c_sec_path)
    assert (k.server, k.public, k.secret) == (s_pub.encode(), c_pub.encode(), c_sec.encode())
    assert _curve.resolve("", "") is None
    h = gg.Hooks(address="tcp://127.0.0.1:1", environ={
        "GSTATS_CURVE_SERVER_KEY": s_pub, "GSTATS_CURVE_CLIENT_KEY": c_sec_path})
    assert h.curve == k and "curve=on" in repr(h)
    # Arguments win over the environment, "" turns CURVE off.
    h = gg.Hooks(address="tcp://127.0.0.1:1", curve_server_key="", curve_client_key="",
                 environ={"GSTATS_CURVE_SERVER_KEY": s_pub, "GSTATS_CURVE_CLIENT_KEY": c_sec_path})
    assert h.curve is None


def bad_settings(tmp_path, keys):
    s_pub, _, s_pub_path, _ = keys["server"]
    _, _, c_pub_path, c_sec_path = keys["client"]
    loose = tmp_path / "loose.key_secret"
    loose.write_text(open(c_sec_path).read())
    loose.chmod(0o644)
    mixed = tmp_path / "mixed.key_secret"
    fd = os.open(str(mixed), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:  # the server's public key with the client's secret one
        f.write(open(c_sec_path).read().replace(keys["client"][0], s_pub))
    missing = str(tmp_path / "missing.key")
    return [
        ({"GSTATS_CURVE_SERVER_KEY": "tooshort", "GSTATS_CURVE_CLIENT_KEY": c_sec_path},
         "GSTATS_CURVE_SERVER_KEY='tooshort' is neither a 40-character Z85 key nor a key file"),
        ({"GSTATS_CURVE_SERVER_KEY": missing, "GSTATS_CURVE_CLIENT_KEY": c_sec_path},
         "is neither a 40-character Z85 key nor a key file"),
        ({"GSTATS_CURVE_SERVER_KEY": "~" * 40, "GSTATS_CURVE_CLIENT_KEY": c_sec_path},
         "is neither a 40-character Z85 key nor a key file"),
        ({"GSTATS_CURVE_SERVER_KEY": s_pub}, "GSTATS_CURVE_CLIENT_KEY is not"),
        ({"GSTATS_CURVE_CLIENT_KEY": c_sec_path}, "GSTATS_CURVE_SERVER_KEY is not"),
        ({"GSTATS_CURVE_SERVER_KEY": s_pub_path, "GSTATS_CURVE_CLIENT_KEY": missing},
         "GSTATS_CURVE_CLIENT_KEY: CURVE secret key file %s: No such file" % missing),
        ({"GSTATS_CURVE_SERVER_KEY": s_pub_path, "GSTATS_CURVE_CLIENT_KEY": c_pub_path},
         "holds no secret-key"),
        ({"GSTATS_CURVE_SERVER_KEY": s_pub_path, "GSTATS_CURVE_CLIENT_KEY": str(loose)},
         "has mode 0644: other users can read it; run chmod 600"),
        ({"GSTATS_CURVE_SERVER_KEY": s_pub_path, "GSTATS_CURVE_CLIENT_KEY": str(mixed)},
         "its public-key is not the one of its secret-key"),
    ]


def test_bad_keys_fail_at_configuration(tmp_path, keys):
    for env, want in bad_settings(tmp_path, keys):
        for make in (lambda e: gg.Hooks(address="tcp://127.0.0.1:1", environ=e),
                     gw.from_environ):
            with pytest.raises(ValueError) as exc:
                make(env)
            assert want in str(exc.value), env
    with pytest.raises(ValueError) as exc:
        gg.Hooks(address="tcp://127.0.0.1:1", curve_server_key="x" * 40, curve_client_key="",
                 environ={})
    assert "curve_server_key" in str(exc.value)


def curve_socket(kind, server_secret):
    """A CURVE server socket of the test's own on a free loopback port. With
    no ZAP handler, libzmq accepts any client key pair."""
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, server_secret.encode())
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    return sock, "tcp://127.0.0.1:%d" % port


def test_hooks_and_original_functions_over_curve(keys):
    s_pub, s_sec, _, _ = keys["server"]
    _, _, _, c_sec_path = keys["client"]
    sock, addr = curve_socket(zmq.PULL, s_sec)
    try:
        h = gg.Hooks(address=addr, prefix="curve", environ={
            "GSTATS_CURVE_SERVER_KEY": s_pub, "GSTATS_CURVE_CLIENT_KEY": c_sec_path})

        def arrived():
            run(h, 1)
            _client.flush()
            return sock.poll(50)
        wait_until(arrived, 30, 0.05, "an event over CURVE")
        assert recv(sock)[0] == b"curve"
        # The original functions send to the same address with its keys.
        gstats.start_request(Req(), collect=True, collector_addr=addr, prefix=b"original")
        _client.flush()
        deadline = time.monotonic() + 30
        seen = set()
        while b"original" not in seen and time.monotonic() < deadline:
            if sock.poll(100):
                seen.update(e[0] for e in unpack(sock.recv_multipart()))
        assert b"original" in seen
    finally:
        sock.close(linger=0)


@pytest.mark.parametrize("which", ["wrong server key", "no CURVE"])
def test_refused_keys_drop_without_blocking(keys, which):
    _, s_sec, _, _ = keys["server"]
    stranger_pub = keys["stranger"][0]
    _, _, _, c_sec_path = keys["client"]
    sock, addr = curve_socket(zmq.PULL, s_sec)
    try:
        env = {} if which == "no CURVE" else {
            "GSTATS_CURVE_SERVER_KEY": stranger_pub, "GSTATS_CURVE_CLIENT_KEY": c_sec_path}
        h = gg.Hooks(address=addr, prefix="refused", environ=env)
        before = gstats.client_stats()
        slowest = 0.0
        end = time.monotonic() + _client.HOLD_SECONDS + 0.5
        n = 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            run(h, 1)
            slowest = max(slowest, time.monotonic() - t0)
            n += 1
            time.sleep(0.005)
        _client.flush()
        wait_until(lambda: gstats.client_stats()["queued"] == 0, 30, message="nothing queued")
        after = gstats.client_stats()
        assert after["sent"] == before["sent"]
        assert after["dropped"] - before["dropped"] == 2 * n
        # A request never waits for the handshake, which never succeeds: a
        # request that waited would take forever, not seconds.
        assert slowest < 5.0, slowest
        assert sock.poll(200) == 0
    finally:
        sock.close(linger=0)


def test_wsgi_control_over_curve(keys):
    s_pub, s_sec, _, _ = keys["server"]
    _, _, _, c_sec_path = keys["client"]
    rep, addr = curve_socket(zmq.REP, s_sec)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            if rep.poll(50):
                assert rep.recv() == b"STATS"
                rep.send(b'{"curve": {"started": 1}}')
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        # Answered: a timeout only a hang would reach. Never answered (the
        # wrong server key): a short one, as waiting longer changes nothing.
        env = {"GSTATS_COMM_ADDR": addr, "GSTATS_CURVE_SERVER_KEY": s_pub,
               "GSTATS_CURVE_CLIENT_KEY": c_sec_path, "GSTATS_TIMEOUT": "30"}
        assert call(gw.from_environ(env))[0] == "200 OK"
        env["GSTATS_TIMEOUT"] = "1"
        env["GSTATS_CURVE_SERVER_KEY"] = keys["stranger"][0]
        status, body = call(gw.from_environ(env))
        assert status.startswith("503") and b"did not answer" in body
    finally:
        stop.set()
        t.join(5)
        rep.close(linger=0)


def call(app, path="/_status"):
    got = {}

    def start_response(status, headers):
        got["status"] = status
    body = b"".join(app({"REMOTE_ADDR": "127.0.0.1", "PATH_INFO": path, "REQUEST_METHOD": "GET"},
                        start_response))
    return got["status"], body


def curve_config(keys, client_keys):
    return ('[[inputs.gstats]]\n  curve_secret_key_file = "%s"\n  curve_client_keys = [%s]\n'
            % (keys["server"][3], ", ".join('"%s"' % k for k in client_keys)))


def test_real_collector_with_curve(collector_factory, tmp_path, keys):
    """gstats-collectd with curve_secret_key_file and curve_client_keys on
    both sockets: the allowed client's hooks are counted and gstats.wsgi
    reads STATS over CURVE; a stranger's events are refused and dropped."""
    s_pub, _, s_pub_path, _ = keys["server"]
    _, _, c_pub_path, c_sec_path = keys["client"]
    col = collector_factory(config=curve_config(keys, [c_pub_path]), tmp_dir=tmp_path)
    env = {"GSTATS_COMM_ADDR": col.comm_addr, "GSTATS_CURVE_SERVER_KEY": s_pub_path,
           "GSTATS_CURVE_CLIENT_KEY": c_sec_path, "GSTATS_TIMEOUT": "30"}
    ctl = gw.from_environ(env).control

    def stats():
        return json.loads(ctl.request(b"STATS"))

    h = gg.Hooks(address=col.stats_addr, prefix="curve", environ=env)
    before = gstats.client_stats()
    wait_until(lambda: run(h, 1) or "curve" in stats(), 30, 0.05, "the hooks' events over CURVE")
    run(h, 50)
    _client.flush()

    def all_counted():
        sent = gstats.client_stats()["sent"] - before["sent"]
        return json.loads(ctl.request(b"INFO"))["accepted"] == sent and sent >= 102
    wait_until(all_counted, 30, 0.05, "every event sent to be counted")
    st = stats()["curve"]
    assert st["started"] == st["finished"] == (gstats.client_stats()["sent"] - before["sent"]) // 2
    status, body = call(gw.from_environ(env))
    assert status == "200 OK" and "curve" in json.loads(body)

    stranger = gg.Hooks(address=col.stats_addr, prefix="stranger", environ={
        "GSTATS_CURVE_SERVER_KEY": s_pub, "GSTATS_CURVE_CLIENT_KEY": keys["stranger"][3]})

    def refused():
        run(stranger, 1)
        return json.loads(ctl.request(b"INFO"))["auth_failures"] > 0
    wait_until(refused, 30, 0.1, "the collector to refuse the stranger's key")
    time.sleep(0.3)
    assert "stranger" not in stats()
    # Without keys, the control socket does not answer either.
    plain = gw.ControlClient(col.comm_addr, timeout=0.5)
    with pytest.raises(gw.CollectorTimeout):
        plain.request(b"STATS")
    plain.close()


def test_gunicorn_with_curve(collector_factory, tmp_path, keys):
    """Real gunicorn with the ready-made hooks and CURVE from the
    environment; a bad key stops gunicorn at start with a message naming the
    variable."""
    s_pub_path = keys["server"][2]
    _, _, c_pub_path, c_sec_path = keys["client"]
    col = collector_factory(config=curve_config(keys, [c_pub_path]), tmp_dir=tmp_path)
    env = {"GSTATS_STATS_ADDR": col.stats_addr, "GSTATS_PREFIX": "gcurve",
           "GSTATS_CURVE_SERVER_KEY": s_pub_path, "GSTATS_CURVE_CLIENT_KEY": c_sec_path}
    g = Gunicorn(tmp_path, conf=APP_DIR / "hooks.conf.py", workers=2, env=env).start()
    ctl = gw.ControlClient(col.comm_addr, timeout=30,
                           curve=_curve.resolve(s_pub_path, c_sec_path))
    try:
        def finished():
            return json.loads(ctl.request(b"STATS")).get("gcurve", {}).get("finished", 0)

        # gunicorn's readiness request is counted too: wait for it.
        wait_until(lambda: finished() == g.served, 30, 0.1, "the readiness request over CURVE")
        for _ in range(20):
            assert g.get("/")[0] == 200
        wait_until(lambda: finished() == g.served + 20, 30, 0.1, "the 20 requests over CURVE")
    finally:
        ctl.close()
        g.stop()

    bad = dict(env, GSTATS_CURVE_CLIENT_KEY=c_pub_path)  # a public key file
    b = Gunicorn(tmp_path, conf=APP_DIR / "hooks.conf.py", env=bad)
    proc = subprocess.Popen(b.cmd, env=b.env, cwd=str(APP_DIR), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        pytest.fail("gunicorn started with a public key file as GSTATS_CURVE_CLIENT_KEY")
    assert proc.returncode != 0
    text = out + b.log()
    assert "GSTATS_CURVE_CLIENT_KEY" in text and "holds no secret-key" in text, text
