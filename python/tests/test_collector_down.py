"""The collector goes away during a load run: the application must not notice.

Every request still succeeds, the worker's memory and open files do not grow
with the number of requests, gunicorn still stops promptly, and counting
resumes when a collector comes back at the same address.
"""

import concurrent.futures
import json

import pytest

from conftest import APP_DIR, free_port, proc_status, settled_status, wait_disconnected, wait_until

#: VmRSS growth allowed between request 200 and request 2000 (allocator noise).
RSS_SLACK_KIB = 1024

#: gunicorn's --graceful-timeout here, seconds.
GRACEFUL_TIMEOUT = 40


def load(g, n, clients=4):
    """n GET / with ``clients`` concurrent clients; returns the status codes seen."""
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return set(pool.map(lambda _: g.get("/", timeout=10)[0], range(n)))


def client_counters(g):
    status, body = g.get("/gstats-client")
    assert status == 200
    return json.loads(body)


@pytest.mark.parametrize("worker_class, threads", [("sync", 1), ("gthread", 4), ("gevent", 1)])
def test_collector_down_then_back(collector_factory, gunicorn, worker_class, threads):
    prefix = "down-" + worker_class
    # Ports held for the whole test (a second collector comes back on them),
    # not ones the kernel picked and may give to someone else meanwhile.
    first = collector_factory("tcp://127.0.0.1:%d" % free_port(),
                              "tcp://127.0.0.1:%d" % free_port())
    # A graceful timeout no prompt stop comes near: a worker that hung on
    # the collector at exit would be killed only after it, not before.
    g = gunicorn(conf=APP_DIR / "hooks.conf.py", worker_class=worker_class, workers=1,
                 threads=threads, env={"GSTATS_STATS_ADDR": first.stats_addr,
                                       "GSTATS_PREFIX": prefix},
                 extra_args=["--graceful-timeout", str(GRACEFUL_TIMEOUT)])
    [worker] = g.worker_pids()

    # Counting works to begin with.
    first.settle_and_reset(prefix, g.served)
    assert load(g, 10) == {200}
    first.wait_counts(prefix, 10, 10)

    # The collector goes away, and the worker's libzmq has seen it go (else
    # the first events would still be handed to the dying connection).
    assert first.stop() == 0
    wait_disconnected(first.stats_addr)
    before = client_counters(g)
    assert load(g, 200) == {200}
    rss_200, fds_200 = settled_status(worker)
    assert load(g, 1800) == {200}
    rss_2000, fds_2000 = settled_status(worker)
    after = client_counters(g)

    print("%s: after 200 requests VmRSS %d KiB, %d fds; after 2000: %d KiB, %d fds"
          % (worker_class, rss_200, fds_200, rss_2000, fds_2000))
    assert g.worker_pids() == [worker], "the worker was restarted"
    # Open files do not grow: a look can catch a connection still closing
    # (or libzmq's reconnection attempt), never fewer files than at rest.
    wait_until(lambda: proc_status(worker)[1] <= fds_200, 10, 0.05,
               "the worker's open files to come back to %d" % fds_200)
    assert rss_2000 - rss_200 < RSS_SLACK_KIB, (rss_200, rss_2000)
    # 2000 requests, 2 messages each, are dropped (or still queued, while
    # the socket is less than a second old), and so are the finish of the
    # first /gstats-client and the start of the second. A few may have left
    # before the disconnect was noticed.
    dropped = after["dropped"] + after["queued"] - before["dropped"] - before["queued"]
    assert 2 * 2000 - 10 <= dropped <= 2 * 2000 + 2, (before, after)
    assert after["errors"] == before["errors"] == 0
    assert after["sockets"] == 1

    # A collector comes back at the same addresses: counting resumes. No
    # request is made until the worker's socket is back: the drops waiting
    # to be reported reach the collector by themselves (every
    # REPORT_SECONDS), and only once the connection is up. What the worker
    # had queued before went out ahead of that report, so after the RESET
    # the collector counts the next 20 requests and nothing else.
    second = collector_factory(first.stats_addr, first.comm_addr)
    wait_until(lambda: second.info()["client_dropped"] > 0, 30, 0.1,
               "the worker's drop report to reach the new collector")
    second.reset()
    assert load(g, 20) == {200}
    second.wait_counts(prefix, 20, 20)

    # Down again; gunicorn still stops promptly.
    assert second.stop() == 0
    assert load(g, 50) == {200}
    took = g.stop(timeout=GRACEFUL_TIMEOUT + 30)
    print("%s: gunicorn stopped %.2f s after SIGTERM" % (worker_class, took))
    assert took < GRACEFUL_TIMEOUT / 2, \
        "gunicorn took %.1fs to stop: its worker waited for the collector" % took
    assert "Exception in" not in g.log(), g.log()
