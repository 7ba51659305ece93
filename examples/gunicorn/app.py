"""A tiny WSGI application for the gstats demo: / answers at once,
/slow sleeps a little, /missing is a 404."""
import random
import time


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/slow":
        time.sleep(random.uniform(0.02, 0.12))
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not here\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from gstats demo\n"]
