"""Fixtures: the real gstats-collectd binary and real gunicorn, on loopback.

Every process is started here on free 127.0.0.1 ports and stopped by PID;
every wait is bounded.
"""

import fcntl
import json
import os
import pathlib
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest
import zmq

HERE = pathlib.Path(__file__).resolve().parent
APP_DIR = HERE / "app"
PY_DIR = HERE.parent
SRC_DIR = PY_DIR / "src"
REPO = PY_DIR.parent

PYTHON = "/usr/bin/python3"
GUNICORN = "/usr/bin/gunicorn"

# The tests import the package from the source tree.
sys.path.insert(0, str(SRC_DIR))

_LISTENING = re.compile(r"stats \(PULL\) on (\S+), control \(REP\) on ([^;\s]+);")
_GUNICORN_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+) ")


class Req:
    """The least of a gunicorn request the hooks read."""

    path = "/"


class Resp:
    """The least of a gunicorn response the hooks read."""

    status_code = 200


def run_requests(hooks, n):
    """Runs hooks' pre_request and post_request for n requests."""
    for _ in range(n):
        req = Req()
        hooks.pre_request(None, req)
        hooks.post_request(None, req, {}, Resp())


# Loopback ports for the tests, handed out as the Go tests' testport package
# (internal/testport) does, so that Go and Python test processes running at
# the same time never pick the same port: a port in [PORT_LOW, PORT_HIGH),
# below the kernel's ephemeral range (the kernel never hands it out by
# itself), held by an exclusive flock on <tmp>/gstats-testport/<port>.lock
# until the test ends, and bindable on 127.0.0.1 when it was handed out.
PORT_LOW, PORT_HIGH = 20000, 32000

# Lock files held by the running test (ports, named locks); closed, which
# releases them, by the autouse fixture below once every other fixture of
# the test has been torn down.
_held = []


def testport_dir():
    path = os.path.join(tempfile.gettempdir(), "gstats-testport")
    os.makedirs(path, 0o777, exist_ok=True)
    return path


def _try_lock(path):
    """An open file holding an exclusive flock on path, or None if taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _bindable(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go's net.Listen
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
    return True


def free_port():
    """A TCP port on 127.0.0.1 that no other test (Go or Python) holds and
    that was bindable when handed out; reserved until the test ends."""
    directory = testport_dir()
    start = PORT_LOW + int.from_bytes(os.urandom(4), "big") % (PORT_HIGH - PORT_LOW)
    for i in range(PORT_HIGH - PORT_LOW):
        port = PORT_LOW + (start - PORT_LOW + i) % (PORT_HIGH - PORT_LOW)
        fd = _try_lock(os.path.join(directory, "%d.lock" % port))
        if fd is None:
            continue
        if not _bindable(port):
            os.close(fd)
            continue
        _held.append(fd)
        return port
    pytest.fail("testport: no free port in [%d, %d)" % (PORT_LOW, PORT_HIGH))


def named_lock(name, timeout=120.0):
    """Take the machine-wide lock ``name`` (the Go tests' testport.Lock: an
    exclusive flock on <tmp>/gstats-testport/named-<name>.lock), waiting up
    to ``timeout`` for whoever holds it; held until the test ends."""
    path = os.path.join(testport_dir(), "named-%s.lock" % name)
    deadline = time.monotonic() + timeout
    while True:
        fd = _try_lock(path)
        if fd is not None:
            _held.append(fd)
            return
        if time.monotonic() > deadline:
            pytest.fail("testport: lock %r held by another test for over %gs (%s)"
                        % (name, timeout, path))
        time.sleep(0.05)


@pytest.fixture
def default_addresses():
    """For tests that bind the collector's default addresses
    (tcp://127.0.0.2:2345, tcp://127.0.0.1:2345): the named lock the Go
    tests take for them, held while the test runs."""
    named_lock("default-addresses")


@pytest.fixture(autouse=True)
def _release_test_ports():
    """Releases the ports and named locks a test took, after its other
    fixtures (collectors, gunicorns) were torn down."""
    yield
    while _held:
        os.close(_held.pop())


def wait_until(predicate, timeout, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns a true value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail("timed out after %gs waiting for %s (last: %r)" % (timeout, message, last))
        time.sleep(interval)


# Helpers for the tests that call the client directly: a PULL socket that
# this process's PUSH socket is connected to, and reading from it.

# Events unpacked from packed messages and not yet returned by recv(), per
# socket.
_pending = {}

BATCH_HEADER = b"gstats-batch/1\n"
_DROPPED_HEADER = re.compile(rb"gstats-batch/1 dropped=([1-9][0-9]{0,15})\n")


def is_packed(frames):
    return len(frames) == 1 and frames[0].startswith(b"gstats-batch/")


def header_dropped(frames):
    """The drop count a packed message's header reports (0 if none)."""
    if not is_packed(frames) or frames[0].startswith(BATCH_HEADER):
        return 0
    m = _DROPPED_HEADER.match(frames[0])
    assert m, "bad packed header: %r" % frames[0][:60]
    return int(m.group(1))


def unpack(frames):
    """The events of one received message as lists of classic frames."""
    if is_packed(frames):
        body = frames[0].split(b"\n", 1)[1] if b"\n" in frames[0] else b""
        return [line.split(b"\t") for line in body.split(b"\n") if line]
    return [frames]


def drain(sock, quiet=0.1):
    n = len(_pending.pop(id(sock), []))
    while sock.poll(int(quiet * 1000)):
        n += len(unpack(sock.recv_multipart()))
    return n


@pytest.fixture
def pull():
    """A PULL socket bound on a free loopback port, with this process's PUSH
    socket already connected to it: (socket, address)."""
    from gstats import _client

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        port = sock.bind_to_random_port("tcp://127.0.0.1")
        addr = "tcp://127.0.0.1:%d" % port
        _wait_connected(sock, addr)
        yield sock, addr
    finally:
        _pending.pop(id(sock), None)
        sock.close(linger=0)
        ctx.term()


def _wait_connected(sock, addr, timeout=60):
    """Wait until this process's PUSH socket to ``addr`` is connected to
    ``sock``: probes, numbered, until the last one sent arrives. A probe
    sent before the connection was up is dropped (once the new socket's
    HOLD_SECONDS are over) or arrives ahead of the last one; none comes
    after it."""
    from gstats import _client
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        n += 1
        last = [b"probe", b"%d" % n]
        _client.send2(addr, *last)
        _client.flush()
        wait = time.monotonic() + 1.0
        while sock.poll(max(0, int((wait - time.monotonic()) * 1000))):
            events = unpack(sock.recv_multipart())
            assert all(e[0] == b"probe" for e in events), events
            if last in events:
                return
        if time.monotonic() > deadline:
            pytest.fail("the PUSH socket to %s did not connect within %gs" % (addr, timeout))


def recv(sock, timeout=30.0):
    """The next event's frames; packed messages are unpacked one by one."""
    pending = _pending.setdefault(id(sock), [])
    if not pending:
        if not sock.poll(int(timeout * 1000)):
            pytest.fail("no message within %gs" % timeout)
        pending.extend(unpack(sock.recv_multipart()))
    return pending.pop(0)


def recv_raw(sock, timeout=30.0):
    """The next message's frames as received (packed or not)."""
    if not sock.poll(int(timeout * 1000)):
        pytest.fail("no message within %gs" % timeout)
    return sock.recv_multipart()


def nothing_more(sock, wait=0.2):
    if _pending.get(id(sock)):
        return False
    return sock.poll(int(wait * 1000)) == 0


def collectd_binary():
    path = os.environ.get("GSTATS_COLLECTD") or str(REPO / "bin" / "gstats-collectd")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            "gstats-collectd not found at %s: run `make build` first "
            "(or set GSTATS_COLLECTD to the binary)" % path,
            pytrace=False,
        )
    return path


def check_tools():
    for tool, pkg in ((GUNICORN, "gunicorn"), (PYTHON, "python3")):
        if not os.access(tool, os.X_OK):
            pytest.fail("%s is missing: apt-get install %s" % (tool, pkg), pytrace=False)


class Collector:
    """A gstats-collectd process with its stats and control addresses."""

    def __init__(self, binary, stats_addr="tcp://127.0.0.1:0", comm_addr="tcp://127.0.0.1:0",
                 extra_args=()):
        self.binary = binary
        self.requested = (stats_addr, comm_addr)
        self.extra_args = list(extra_args)
        self.proc = None
        self.stats_addr = None
        self.comm_addr = None
        self.log = []
        self._ctx = zmq.Context()

    def start(self, timeout=30):
        self.proc = subprocess.Popen(
            [self.binary, "-s", self.requested[0], "-c", self.requested[1]] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )
        lines = queue.Queue()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                pytest.fail("gstats-collectd did not report its addresses within %gs:\n%s"
                            % (timeout, "".join(self.log)))
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(5)
                pytest.fail("gstats-collectd exited with %s:\n%s"
                            % (self.proc.returncode, "".join(self.log)))
            m = _LISTENING.search(line)
            if m:
                self.stats_addr, self.comm_addr = m.group(1), m.group(2)
                return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout=10):
        """SIGTERM by PID, wait (bounded); returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.kill(self.proc.pid, signal.SIGCONT)  # in case a test stopped it
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            pytest.fail("gstats-collectd did not stop within %gs of SIGTERM" % timeout)

    def ask(self, command, timeout=10.0):
        sock = self._ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(self.comm_addr)
            sock.send(command)
            if not sock.poll(int(timeout * 1000)):
                pytest.fail("no reply to %r from %s within %gs"
                            % (command, self.comm_addr, timeout))
            return sock.recv()
        finally:
            sock.close(linger=0)

    def stats(self):
        return json.loads(self.ask(b"STATS"))

    def info(self):
        return json.loads(self.ask(b"INFO"))

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def rtimes(self):
        return json.loads(self.ask(b"RTIMES"))

    def reset(self):
        assert json.loads(self.ask(b"RESET")) is None

    def prefix_stats(self, prefix):
        return self.stats().get(prefix, {"started": 0, "finished": 0})

    def wait_counts(self, prefix, started, finished, timeout=30):
        """Wait until ``prefix`` shows exactly these counts; return its stats."""
        def check():
            s = self.prefix_stats(prefix)
            return s if (s["started"], s["finished"]) == (started, finished) else None
        return wait_until(check, timeout, 0.05,
                          "%s started=%d finished=%d (now %r)" % (prefix, started, finished,
                                                                  self.prefix_stats(prefix)))

    def settle_and_reset(self, prefix, requests, timeout=30):
        """Wait until ``prefix`` shows exactly ``requests`` started and
        finished requests (e.g. a gunicorn's readiness requests,
        ``Gunicorn.served``), then RESET. Waiting for the exact count, not
        for two equal looks, is what proves nothing more is on its way."""
        self.wait_counts(prefix, requests, requests, timeout)
        self.reset()

    def close(self):
        self.stop()
        self._ctx.destroy(linger=0)


@pytest.fixture
def collectd():
    """The path of the gstats-collectd binary (fails if it was not built)."""
    return collectd_binary()


@pytest.fixture
def collector(collectd):
    """A running gstats-collectd on free loopback ports."""
    c = Collector(collectd).start()
    yield c
    c.close()


@pytest.fixture
def collector_factory(collectd):
    """Start collectors (e.g. again at the same addresses); all stopped at teardown."""
    started = []

    def make(stats_addr="tcp://127.0.0.1:0", comm_addr="tcp://127.0.0.1:0", config=None,
             tmp_dir=None):
        """``config``: the text of a configuration file (--config), written to ``tmp_dir``."""
        extra = []
        if config is not None:
            path = pathlib.Path(tmp_dir) / ("gstats-%d.conf" % len(started))
            path.write_text(config)
            extra = ["--config", str(path)]
        c = Collector(collectd, stats_addr, comm_addr, extra_args=extra).start()
        started.append(c)
        return c

    yield make
    for c in started:
        c.close()


_TCP_ESTABLISHED, _TCP_CLOSE_WAIT = "01", "08"


def connections_to(port):
    """How many TCP connections on this machine have ``port`` as their
    remote port and are established, or closed by the peer but not yet by
    this end (CLOSE_WAIT)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    remote, state = fields[2], fields[3]
                    if int(remote.rsplit(":", 1)[1], 16) == port and \
                            state in (_TCP_ESTABLISHED, _TCP_CLOSE_WAIT):
                        n += 1
        except OSError:
            pass
    return n


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def wait_disconnected(address, timeout=30):
    """Wait until no process holds a connection to ``address`` (a tcp://
    endpoint whose server is gone): every client, libzmq's I/O threads
    included, has seen the disconnect and closed its socket."""
    port = port_of(address)
    wait_until(lambda: connections_to(port) == 0, timeout, 0.02,
               "every connection to %s to be closed" % address)


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


class Gunicorn:
    """A gunicorn master started by PID (never wrapped in ``timeout``)."""

    _count = 0

    def __init__(self, tmp_path, app="app:application", conf=None, worker_class="sync",
                 workers=1, threads=1, env=None, chdir=APP_DIR, extra_args=()):
        check_tools()
        # gunicorn binds port 0 (the kernel picks a port no one holds) and
        # logs the port it got: "Listening at: http://127.0.0.1:PORT".
        self.port = None
        self.url = None
        Gunicorn._count += 1
        self.pidfile = tmp_path / ("gunicorn-%d.pid" % Gunicorn._count)
        self.logfile = tmp_path / ("gunicorn-%d.log" % Gunicorn._count)
        self.cmd = [
            GUNICORN, "--chdir", str(chdir), "-b", "127.0.0.1:0",
            "-k", worker_class, "-w", str(workers), "--threads", str(threads),
            "-p", str(self.pidfile), "--graceful-timeout", "5", "--timeout", "30",
            "--log-level", "info", "--error-logfile", str(self.logfile),
        ]
        if conf is not None:
            self.cmd += ["-c", str(conf)]
        self.cmd += list(extra_args) + [app]
        self.env = dict(os.environ)
        paths = [str(SRC_DIR), str(APP_DIR)]
        if self.env.get("PYTHONPATH"):
            paths.append(self.env["PYTHONPATH"])
        self.env["PYTHONPATH"] = os.pathsep.join(paths)
        self.env.update(env or {})
        self.proc = None
        self.workers = workers
        #: Requests gunicorn served to start(): one, the readiness request.
        self.served = 0

    def start(self, timeout=60, ready_path="/", ready_status=200):
        """Start gunicorn; return once it answered one request (to
        ``ready_path``, with ``ready_status``) and all its workers run.

        Exactly one request is made, so that tests know how many requests
        the hooks report before theirs (``served``): it is made once gunicorn
        listens and waits (bounded) for its answer, as a request given up
        on could still be served, and counted, later."""
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=str(APP_DIR),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout

        def listening():
            if self.proc.poll() is not None:
                pytest.fail("gunicorn exited with %s:\n%s" % (self.proc.returncode, self.log()))
            m = _GUNICORN_LISTENING.search(self.log())
            return m and int(m.group(1))
        self.port = wait_until(listening, timeout, 0.05, "gunicorn to listen")
        self.url = "http://127.0.0.1:%d" % self.port
        try:
            status, _ = self.get(ready_path, timeout=max(1.0, deadline - time.monotonic()))
        except OSError as exc:
            self.proc.poll()
            pytest.fail("gunicorn on %s did not answer %s (%r; exit code %s):\n%s"
                        % (self.url, ready_path, exc, self.proc.returncode, self.log()))
        self.served = 1
        assert status == ready_status, "%s answered %d, not %d:\n%s" % (
            ready_path, status, ready_status, self.log())
        wait_until(lambda: len(self.worker_pids()) == self.workers,
                   max(1.0, deadline - time.monotonic()), 0.05,
                   "gunicorn's %d workers" % self.workers)
        return self

    def log(self):
        try:
            return self.logfile.read_text()
        except OSError:
            return ""

    @property
    def pid(self):
        return self.proc.pid

    def worker_pids(self):
        return [p for p in _children(self.proc.pid) if _alive(p)]

    def get(self, path, timeout=10):
        """GET ``path``; returns (status, body). HTTP errors are answers too."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            body = e.read()
            e.close()
            return e.code, body

    def stop(self, timeout=10):
        """SIGTERM the master and wait (bounded); returns seconds taken."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        workers = self.worker_pids()
        t0 = time.monotonic()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for p in workers + [self.proc.pid]:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.wait(5)
            pytest.fail("gunicorn did not exit within %gs of SIGTERM:\n%s" % (timeout, self.log()))
        took = time.monotonic() - t0
        wait_until(lambda: not any(_alive(p) for p in workers), 5, 0.05, "workers to exit")
        return took


@pytest.fixture
def gunicorn(tmp_path):
    """Factory: ``gunicorn(app=..., conf=..., worker_class=..., ...)`` -> started Gunicorn."""
    started = []

    def make(ready_path="/", ready_status=200, **kwargs):
        g = Gunicorn(tmp_path, **kwargs)
        started.append(g)
        return g.start(ready_path=ready_path, ready_status=ready_status)

    yield make
    for g in started:
        g.stop()


def settled_status(pid, samples=10, interval=0.05):
    """``proc_status`` once in-flight connections are closed: the fewest fds
    seen over ``samples`` looks (and the VmRSS of that look)."""
    looks = []
    for _ in range(samples):
        looks.append(proc_status(pid))
        time.sleep(interval)
    return min(looks, key=lambda look: (look[1], look[0]))


def proc_status(pid):
    """(VmRSS in KiB, number of open fds) of a process."""
    rss = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))
