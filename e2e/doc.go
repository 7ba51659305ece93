// Package e2e holds end-to-end tests with real programs: the gstats-collectd
// and gstatsctl binaries built from this module, and a real gunicorn whose
// hooks push request timings over ZeroMQ the way existing deployments do.
//
// The tests need Debian's gunicorn and pyzmq (apt-get install gunicorn
// python3-zmq); without them they fail with that hint.
package e2e
