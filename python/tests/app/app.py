"""The WSGI application the gunicorn tests run.

    /                 200 "ok"
    /sleep?ms=N       sleeps N ms (0-10000), then 200
    /status/NNN       answers status NNN (200-599)
    /gstats-client    JSON: this worker's pid, gstats.client_stats() and
                      how many PUSH sockets it has open
    anything else     404
"""

import json
import os
import time
from urllib.parse import parse_qs

import gstats
from gstats import _client


def _reply(start_response, status, body, content_type="text/plain"):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        return _reply(start_response, "200 OK", b"ok\n")
    if path == "/sleep":
        try:
            ms = int(parse_qs(environ.get("QUERY_STRING", "")).get("ms", ["0"])[0])
        except ValueError:
            ms = -1
        if not 0 <= ms <= 10000:
            return _reply(start_response, "400 Bad Request", b"ms must be 0-10000\n")
        time.sleep(ms / 1000.0)
        return _reply(start_response, "200 OK", b"slept %d ms\n" % ms)
    if path.startswith("/status/"):
        try:
            code = int(path[len("/status/"):])
        except ValueError:
            code = 0
        if not 200 <= code <= 599:
            return _reply(start_response, "400 Bad Request", b"status must be 200-599\n")
        return _reply(start_response, "%d Status" % code, b"status %d\n" % code)
    if path == "/gstats-client":
        body = dict(gstats.client_stats(), pid=os.getpid(), sockets=_client.socket_count())
        return _reply(start_response, "200 OK", json.dumps(body).encode(), "application/json")
    return _reply(start_response, "404 Not Found", b"not found\n")
