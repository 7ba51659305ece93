"""gunicorn configuration files written for gstats 0.6 work unchanged.

app/original_protocol.conf.py is the hook file from PROTOCOL.md and
app/original_readme.conf.py the one from the original README (with its
swapped hook arguments, the ``collector=`` keyword and a str prefix), both
verbatim. Their hard-coded collector address (the default,
tcp://127.0.0.2:2345) is the only text changed, in a copy, to point at the
collector this test started on a free port.
"""

import concurrent.futures

import pytest

from conftest import APP_DIR

ORIGINAL_ADDR = "tcp://127.0.0.2:2345"
SLOW_MS = 1000


def pointed_at(collector, name, tmp_path):
    text = (APP_DIR / name).read_text()
    assert "import start_request, end_request" in text
    assert ORIGINAL_ADDR in text
    conf = tmp_path / name
    conf.write_text(text.replace(ORIGINAL_ADDR, collector.stats_addr))
    # Nothing but the address changed.
    assert conf.read_text().replace(collector.stats_addr, ORIGINAL_ADDR) == text
    return conf


@pytest.mark.parametrize("name, worker_class, threads", [
    ("original_protocol.conf.py", "sync", 1),
    ("original_protocol.conf.py", "gthread", 4),
    ("original_readme.conf.py", "sync", 1),
])
def test_original_hook_files(collector, gunicorn, tmp_path, name, worker_class, threads):
    conf = pointed_at(collector, name, tmp_path)
    g = gunicorn(conf=conf, worker_class=worker_class, workers=2 if worker_class == "sync" else 1,
                 threads=threads)
    collector.settle_and_reset("my_app", g.served)

    paths = ["/sleep?ms=%d" % SLOW_MS] * 4 + ["/"] * 12 + ["/status/404"] * 4
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda p: g.get(p, timeout=30)[0], paths))
    assert sorted(statuses) == [200] * 16 + [404] * 4

    n = len(paths)
    stats = collector.wait_counts("my_app", n, n)
    assert list(collector.stats()) == ["my_app"]
    # The old hooks send no status frame.
    assert stats["status"]["none"] == n
    durations = sorted(collector.rtimes()["my_app"])
    # Each request timed on its own; the gap between slow and fast is wide
    # enough that only a stalled worker, not a busy machine, blurs it.
    assert all(SLOW_MS <= d < 2 * SLOW_MS for d in durations[-4:]), durations
    assert all(d < SLOW_MS for d in durations[:-4]), durations
    assert "Exception in" not in g.log(), g.log()
