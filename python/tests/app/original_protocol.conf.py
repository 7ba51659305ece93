from gstats import start_request, end_request

def pre_request(worker, req):
    start_request(req, collect=True, collector_addr='tcp://127.0.0.2:2345', prefix=b'my_app')

def post_request(worker, req, environ, resp):
    end_request(req, collector_addr='tcp://127.0.0.2:2345', prefix=b'my_app')
