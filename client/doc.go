// Package client reports request timings from a Go application to a gstats
// collector.
//
// A Client owns one ZeroMQ PUSH socket, connected to the collector's stats
// address, and one goroutine that writes to it. Start and Finish, and the
// net/http middleware built on them, only put a fixed-size event into a
// bounded in-process queue; they never wait for the network, never allocate
// and never block:
//
//   - when the queue is full, the event is dropped and counted;
//   - when no collector is connected, the socket refuses the message at once
//     (ZeroMQ's IMMEDIATE option) and it is dropped and counted, so nothing
//     piles up inside the application while the collector is down;
//   - when the collector is connected but slower than the application, at
//     most SendHWM messages wait in the socket; the rest are dropped and
//     counted.
//
// Stats reports what was sent and what was dropped, and a throttled warning
// names the option to raise. The socket reconnects by itself: counting
// resumes once a collector listens at the address again.
//
// Drops are counted on both sides: every packed message reports, in its
// header, the events dropped since the last packed message the socket
// accepted ("gstats-batch/1 dropped=N"), and the collector adds them to its
// client_dropped counter. Drops a refused message could not report wait for
// the next one; when drops wait and no event comes, the sender sends a
// packed message holding no event to report them, when it goes idle and
// then once every LogInterval. Once one packed message has gone out after
// a burst of drops, Stats.Dropped equals Stats.Reported, and a collector
// fed by this client alone shows the same client_dropped.
// Classic messages cannot carry the count: with Options.Classic the
// collector never learns of the drops.
//
// With Options.CurveServerKey and Options.CurveClientKey (or
// Options.LoadCurveKeys, which reads them from key files), the connection
// uses ZeroMQ CURVE: encrypted, the collector authenticated by its public
// key and this client by its key pair, which must be in the collector's
// curve_client_keys. Bad keys fail New; a collector that refuses the
// client's key leaves it without a connection, dropping and counting as
// when no collector listens.
//
// The messages are the gstats wire format (see package wire). By default the
// goroutine packs the events it finds queued into packed messages (one
// frame, wire.BatchHeader then a line per event, at most MaxPackedBytes):
// one message per batch, not per event, which is what lets one sender keep
// up with a busy server. Options.Classic sends each event as a classic
// message instead, which the original Python collector also reads: a start
// is [prefix, ""], a finish is [prefix, "<ms>"] or [prefix, "<ms>",
// "<status>"], with the duration in milliseconds to the microsecond
// ("12.500"). After the socket refuses a message, events are dropped
// without trying for 10 ms.
//
// A minimal setup:
//
//	c, err := client.New(client.Options{Address: "tcp://127.0.0.2:2345", Prefix: "my_app"})
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//	http.ListenAndServe(":8080", c.Middleware(mux))
package client
