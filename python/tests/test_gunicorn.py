"""Real gunicorn (sync, gthread, gevent) with the gstats.gunicorn hooks,
reporting to the real gstats-collectd."""

import concurrent.futures
import json

import pytest

from conftest import APP_DIR

# The slow requests sleep SLOW_MS; the others do next to nothing. The gap is
# wide enough that only a stalled worker (not a busy machine) could make a
# fast request look slow, or a slow one take twice its time.
SLOW_MS = 1000
N_SLOW = 4


def workload():
    """34 requests: 4 slow ones, 2xx/4xx/5xx answers, in an order that mixes them."""
    paths = (["/sleep?ms=%d" % SLOW_MS] * N_SLOW + ["/"] * 12 + ["/status/201"] * 3
             + ["/status/404"] * 5 + ["/no/such/page"] * 5 + ["/status/500"] * 5)
    mixed = []
    for i in range(10):  # interleave so slow and fast requests overlap
        mixed += paths[i::10]
    assert sorted(mixed) == sorted(paths)
    return mixed


EXPECTED_STATUS = {"1xx": 0, "2xx": N_SLOW + 15, "3xx": 0, "4xx": 10, "5xx": 5, "none": 0}


def run_concurrently(g, paths, clients=10):
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda p: (p, g.get(p, timeout=30)[0]), paths))


@pytest.mark.parametrize("worker_class, workers, threads, pack", [
    ("sync", 2, 1, "1"),
    ("gthread", 1, 4, "1"),
    ("gevent", 1, 1, "1"),
    ("sync", 2, 1, "0"),     # classic messages, one per event
    ("gthread", 1, 4, "0"),
])
def test_counts_durations_and_status(collector, gunicorn, worker_class, workers, threads, pack):
    prefix = "app-%s-%s" % (worker_class, pack)
    g = gunicorn(conf=APP_DIR / "hooks.conf.py", worker_class=worker_class, workers=workers,
                 threads=threads, env={"GSTATS_STATS_ADDR": collector.stats_addr,
                                       "GSTATS_PREFIX": prefix, "GSTATS_PACK": pack})
    collector.settle_and_reset(prefix, g.served)

    paths = workload()
    answers = run_concurrently(g, paths)
    for path, status in answers:
        want = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else \
            404 if path.startswith("/no/") else 200
        assert status == want, path

    n = len(paths)
    stats = collector.wait_counts(prefix, n, n)
    assert stats["status"] == EXPECTED_STATUS
    assert stats["in_flight"] == 0

    durations = sorted(collector.rtimes()[prefix])
    assert len(durations) == n
    slow, fast = durations[-N_SLOW:], durations[:-N_SLOW]
    # Each request is timed on its own, even when they overlap in one
    # worker: a slow request is never timed from a later start (shorter
    # than its sleep), nor a fast one from a slow one's start.
    assert all(SLOW_MS <= d < 2 * SLOW_MS for d in slow), slow
    assert all(0 <= d < SLOW_MS for d in fast), fast
    pt = stats["processing_time"]
    assert pt["count"] == n
    assert pt["max"] == pytest.approx(slow[-1], abs=0.01)
    assert pt["min"] == pytest.approx(fast[0], abs=0.01)
    assert "Exception in" not in g.log(), g.log()


def test_configure_with_a_prefix_per_request(collector, gunicorn):
    g = gunicorn(conf=APP_DIR / "configure.conf.py", worker_class="gthread", workers=1, threads=4,
                 env={"TEST_STATS_ADDR": collector.stats_addr})
    collector.settle_and_reset("fast", g.served)
    paths = ["/sleep?ms=50"] * 6 + ["/"] * 9 + ["/status/503"] * 3
    assert all(status in (200, 503) for _, status in run_concurrently(g, paths, 6))
    fast = collector.wait_counts("fast", 12, 12)
    slow = collector.wait_counts("slow", 6, 6)
    assert "unused" not in collector.stats()
    assert slow["processing_time"]["min"] >= 50
    assert fast["status"]["5xx"] == 3 and fast["status"]["2xx"] == 9
    assert slow["status"]["2xx"] == 6


def test_worker_reports_its_client_counters(collector, gunicorn):
    g = gunicorn(conf=APP_DIR / "hooks.conf.py", worker_class="sync", workers=1,
                 env={"GSTATS_STATS_ADDR": collector.stats_addr, "GSTATS_PREFIX": "c"})
    collector.settle_and_reset("c", g.served)
    for _ in range(5):
        assert g.get("/")[0] == 200
    status, body = g.get("/gstats-client")
    counters = json.loads(body)
    assert status == 200 and counters["pid"] in g.worker_pids()
    assert counters["dropped"] == 0 and counters["errors"] == 0
    assert counters["sockets"] == 1
    # Two messages for each readiness request and each of the 5, plus this
    # one's start: sent, or waiting for the next batch.
    total = counters["sent"] + counters["queued"]
    assert total >= 2 * (1 + 5) + 1 and total % 2 == 1, counters
    collector.wait_counts("c", 6, 6)
