#!/usr/bin/python3
"""Cost of the gunicorn hooks per request: pre_request + post_request.

Compares, in one run and against the same receiver, a fake gunicorn
request/response going through:

  * the gstats.gunicorn hooks (one PUSH socket per process, events packed
    many to a message and sent every 10 ms, NOBLOCK), as Hooks methods and
    as the module-level functions,
  * the same hooks sending classic messages (GSTATS_PACK=0: one message
    per event, still batched every 10 ms),
  * the same hooks with batching off (each message sent at once),
  * gstats.start_request/end_request (the compatible functions),
  * the hooks with the collector down (messages dropped),
  * a reference that does what gstats 0.6 did: a new PUSH socket per
    message (socket, connect, send, close).

"Paced" rows sleep between pairs, as requests come to a server, so the
receiver keeps up and every message is really sent; they give the time
spent inside the calls and the CPU time of the whole process per pair (the
flusher thread and libzmq's I/O thread included). "Back to back" rows run
the pairs in a tight loop: the receiver cannot keep up and most messages
are dropped (which is what the client must do then).

The receiver is the real gstats-collectd (GSTATS_COLLECTD, default
bin/gstats-collectd of this repository) started by this script on free
loopback ports, or with --pull a plain PULL socket drained by a thread of
this process (which then competes for the GIL). Stopped by PID at the end.

    /usr/bin/python3 python/bench/bench_hooks.py [--pairs N] [--pull]

Target: <= 8 us per request pair for the hooks. Takes about 30 s.
"""

import argparse
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import zmq  # noqa: E402

import gstats  # noqa: E402
import gstats.gunicorn  # noqa: E402
from gstats import _client  # noqa: E402

TARGET_US = 8.0


class Req:
    def __init__(self):
        self.path = "/"
        self.method = "GET"


class Resp:
    status_code = 200


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CollectorProcess:
    def __init__(self, binary):
        self.proc = subprocess.Popen(
            [binary, "-s", "tcp://127.0.0.1:0", "-c", "tcp://127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        found = {}

        def read():
            for line in self.proc.stderr:
                m = re.search(r"stats \(PULL\) on (\S+), control \(REP\) on ([^;\s]+);", line)
                if m:
                    found["addrs"] = m.groups()
        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 10
        while "addrs" not in found:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                sys.exit("gstats-collectd did not start")
            time.sleep(0.01)
        self.stats_addr, self.comm_addr = found["addrs"]
        self.ctx = zmq.Context()

    def ask(self, command):
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(self.comm_addr)
        s.send(command)
        if not s.poll(5000):
            s.close()
            return None
        reply = s.recv()
        s.close()
        return json.loads(reply)

    def received(self):
        info = self.ask(b"INFO") or {}
        return info.get("accepted")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class PullReceiver:
    def __init__(self):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.stats_addr = "tcp://127.0.0.1:%d" % port
        self.count = 0
        self.running = True
        self.thread = threading.Thread(target=self.drain, daemon=True)
        self.thread.start()

    def drain(self):
        while self.running:
            if self.sock.poll(100):
                while True:
                    try:
                        self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.count += 1

    def received(self):
        return self.count

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close(linger=0)
        self.ctx.term()


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def _empty_pair(req):
    pass


def time_pairs(pairs, rounds, pair, gap_us=0.0, settle=False):
    """Measure ``pair(req)``; returns (inline us per pair, CPU us per pair).

    With ``gap_us``, the pairs are spaced by a sleep of that long, as
    requests are in a server; the receiver keeps up, so every message is
    really sent. "inline" is the wall time spent inside the calls, what a
    request waits for (timer cost taken off). "CPU" is the CPU time of the
    whole process, all threads included (the flusher thread and libzmq's
    I/O thread), minus that of the same loop with an empty pair.

    Without a gap, pairs run back to back (both figures are then per pair
    of the loop); a receiver that cannot keep up makes the client drop.

    With ``settle``, wait (at most 10 s) before each round until the number
    of open files is back to where it was: the reference leaves closing
    sockets behind that hold files until their messages are delivered.
    Best (lowest) of ``rounds`` for each figure.
    """
    pc = time.perf_counter
    cpu = time.process_time
    gap = gap_us / 1e6
    sleep = time.sleep
    baseline_fds = open_fds()

    def one_round(fn):
        reqs = [Req() for _ in range(pairs)]
        if not gap:
            c0, t0 = cpu(), pc()
            for req in reqs:
                fn(req)
            return pc() - t0, cpu() - c0
        inline = 0.0
        c0 = cpu()
        for req in reqs:
            t0 = pc()
            fn(req)
            inline += pc() - t0
            sleep(gap)
        return inline, cpu() - c0

    base_inline, base_cpu = min(one_round(_empty_pair) for _ in range(2)) if gap else (0.0, 0.0)
    best_inline = best_cpu = float("inf")
    for _ in range(rounds):
        if settle:
            deadline = time.monotonic() + 10
            while open_fds() > baseline_fds + 4 and time.monotonic() < deadline:
                time.sleep(0.05)
        inline, used = one_round(pair)
        if gap:
            time.sleep(2 * _client.DEFAULT_FLUSH_DELAY)  # let the last batch go
        best_inline = min(best_inline, (inline - base_inline) / pairs * 1e6)
        best_cpu = min(best_cpu, (used - base_cpu) / pairs * 1e6)
    return best_inline, best_cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=50000,
                    help="request pairs per back-to-back round [50000]")
    ap.add_argument("--paced-pairs", type=int, default=5000,
                    help="request pairs per paced round [5000]")
    ap.add_argument("--gap-us", type=float, default=100.0,
                    help="sleep between paced pairs, microseconds [100]")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; the best is kept [5]")
    ap.add_argument("--reference-pairs", type=int, default=100,
                    help="pairs per round for the socket-per-message reference (each "
                         "pair leaves 4 files open until delivered) [100]")
    ap.add_argument("--pull", action="store_true",
                    help="receive with a PULL socket drained in a thread "
                         "instead of gstats-collectd")
    args = ap.parse_args()

    if args.pull:
        receiver, what = PullReceiver(), "a PULL socket drained by a thread of this process"
    else:
        binary = os.environ.get("GSTATS_COLLECTD") or \
            str(HERE.parent.parent / "bin" / "gstats-collectd")
        if not os.access(binary, os.X_OK):
            sys.exit("gstats-collectd not found at %s: run `make build` first "
                     "(or use --pull)" % binary)
        receiver, what = CollectorProcess(binary), "gstats-collectd (%s)" % binary
    try:
        run(args, receiver, what)
    finally:
        receiver.stop()


def run(args, receiver, what):
    addr = receiver.stats_addr
    hooks = gstats.gunicorn.Hooks(address=addr, prefix="bench", environ={})
    pre, post = hooks.pre_request, hooks.post_request
    resp, environ = Resp(), {}

    # Connect first, and get past the new socket's hold period.
    _client.connect(addr)
    time.sleep(_client.HOLD_SECONDS + 0.1)

    def ours(req):
        pre(None, req)
        post(None, req, environ, resp)

    chooks = gstats.gunicorn.Hooks(address=addr, prefix="bench", pack=False, environ={})
    cpre, cpost = chooks.pre_request, chooks.post_request

    def classic(req):  # GSTATS_PACK=0: one classic message per event
        cpre(None, req)
        cpost(None, req, environ, resp)

    gstats.gunicorn.configure(address=addr, prefix="bench")
    mpre, mpost = gstats.gunicorn.pre_request, gstats.gunicorn.post_request

    def module_level(req):
        mpre(None, req)
        mpost(None, req, environ, resp)

    def compat(req):
        gstats.start_request(req, collect=True, collector_addr=addr, prefix=b"bench")
        gstats.end_request(req, collector_addr=addr, prefix=b"bench")

    dead = "tcp://127.0.0.1:%d" % free_port()
    dhooks = gstats.gunicorn.Hooks(address=dead, prefix="bench", environ={})
    dpre, dpost = dhooks.pre_request, dhooks.post_request
    _client.connect(dead)
    time.sleep(_client.HOLD_SECONDS + 0.1)

    def down(req):
        dpre(None, req)
        dpost(None, req, environ, resp)

    def immediate(req):  # run with the flush delay at 0: no batching
        ours(req)

    ctx = zmq.Context()

    def reference(req):
        # gstats 0.6: a new socket for every message.
        t0 = time.time()
        s = ctx.socket(zmq.PUSH)
        s.connect(addr)
        s.send_multipart([b"bench", b""])
        s.close()
        s = ctx.socket(zmq.PUSH)
        s.connect(addr)
        s.send_multipart([b"bench", b"%i" % ((time.time() - t0) * 1000)])
        s.close()

    rows = []
    before_all = receiver.received()
    paced = "paced"
    for name, fn, pairs, gap in [
        ("hooks, collector up (%s)" % paced, ours, args.paced_pairs, args.gap_us),
        ("hooks, classic messages (%s)" % paced, classic, args.paced_pairs, args.gap_us),
        ("hooks, no batching (%s)" % paced, immediate, args.paced_pairs, args.gap_us),
        ("module-level hooks (%s)" % paced, module_level, args.paced_pairs, args.gap_us),
        ("start_request/end_request (%s)" % paced, compat, args.paced_pairs, args.gap_us),
        ("hooks, collector up (back to back)", ours, args.pairs, 0),
        ("hooks, collector down (back to back)", down, args.pairs, 0),
        ("reference: socket per message (0.6)", reference, args.reference_pairs, args.gap_us),
    ]:
        _client.set_flush_delay(0 if fn is immediate else _client.DEFAULT_FLUSH_DELAY)
        _client.flush()
        time.sleep(0.05)
        c0 = dict(_client.stats())
        us = time_pairs(pairs, args.rounds, fn, gap, settle=fn is reference)
        if fn is reference:  # its sockets' I/O outlives the round: CPU is not comparable
            us = (us[0], None)
        time.sleep(0.05)
        _client.flush()
        c1 = _client.stats()
        rows.append((name, us, pairs, {k: c1[k] - c0[k] for k in ("sent", "dropped")}))
    time.sleep(0.5)
    received = receiver.received()
    ctx.destroy(linger=0)

    print("receiver: %s" % what)
    print("python %s, pyzmq %s, libzmq %s; best of %d rounds"
          % (sys.version.split()[0], zmq.pyzmq_version(), zmq.zmq_version(), args.rounds))
    print()
    print("%-42s %9s %9s %7s %8s %8s" % ("variant", "inline", "CPU", "pairs", "sent", "dropped"))
    print("%-42s %9s %9s" % ("", "us/pair", "us/pair"))
    print("-" * 88)
    for name, (inline, used), pairs, c in rows:
        sent = c["sent"] if "reference" not in name else "-"
        dropped = c["dropped"] if "reference" not in name else "-"
        print("%-42s %9.2f %9s %7d %8s %8s" % (
            name, inline, "-" if used is None else "%.2f" % used, pairs, sent, dropped))
    print("-" * 88)
    print("paced: %g us sleep between pairs, the receiver keeps up. inline: time spent in the"
          % args.gap_us)
    print("calls (what a request waits for); CPU: process CPU time per pair, all threads")
    print("(flusher, libzmq I/O thread) included. sent/dropped: messages, all rounds, 2 per pair.")
    if isinstance(receiver, PullReceiver):
        print("with --pull the receiving thread is in this process: CPU includes it.")
    print()
    ours_inline, ours_cpu = rows[0][1]
    ref_inline = rows[-1][1][0]
    print("hooks: %.2f us inline, %.2f us CPU per pair (target <= %.0f us): %s"
          % (ours_inline, ours_cpu, TARGET_US,
             "OK" if max(ours_inline, ours_cpu) <= TARGET_US else "MISSED"))
    print("a socket per message (gstats 0.6) takes %.0fx longer inline"
          % (ref_inline / ours_inline))
    if rows[0][3]["dropped"]:
        print("note: %d messages were dropped in the paced run; the receiver did not keep up"
              % rows[0][3]["dropped"])
    if received is not None and before_all is not None:
        print("messages received by the receiver during the run: %d" % (received - before_all))


if __name__ == "__main__":
    main()
