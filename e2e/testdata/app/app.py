"""A tiny WSGI application for the gstats end-to-end tests.

    /               200 at once
    /sleep?ms=N     sleeps N milliseconds, then 200
    /status/NNN     answers with status NNN
"""

import http
import time
from urllib.parse import parse_qs


def _reason(code):
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Status"


def _reply(start_response, code, body):
    start_response(
        "%d %s" % (code, _reason(code)),
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        return _reply(start_response, 200, b"ok\n")
    if path == "/sleep":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            ms = int(query.get("ms", ["0"])[0])
        except ValueError:
            return _reply(start_response, 400, b"ms must be an integer\n")
        if not 0 <= ms <= 10000:
            return _reply(start_response, 400, b"ms must be in [0, 10000]\n")
        time.sleep(ms / 1000.0)
        return _reply(start_response, 200, b"slept %d ms\n" % ms)
    if path.startswith("/status/"):
        try:
            code = int(path[len("/status/"):])
        except ValueError:
            return _reply(start_response, 400, b"status must be an integer\n")
        if not 200 <= code <= 599:
            return _reply(start_response, 400, b"status must be in [200, 599]\n")
        return _reply(start_response, code, b"status %d\n" % code)
    return _reply(start_response, 404, b"not found\n")
