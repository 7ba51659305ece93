// Command gstats-munin answers munin for the gstats plug-ins. The plug-in
// scripts in munin/plugins run it as
//
//	gstats-munin PLUGIN-NAME [config|autoconf|suggest]
//
// with their own name (gunicorn-requests_<label>, ...). It asks the
// collector for STATS over the control socket, never waiting longer than
// env.timeout (3 s by default), and prints what munin expects; see package
// munin for the output.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gstats/gstats/munin"
	"github.com/gstats/gstats/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := munin.Run(ctx, os.Args[1:], os.Getenv, stats, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stats sends STATS to the control socket at address; its errors name the
// command, the address and the likely cause.
func stats(ctx context.Context, address string, timeout time.Duration) ([]byte, error) {
	c := wire.NewClient(wire.ClientOptions{Address: address, Timeout: timeout})
	return c.Do(ctx, string(wire.CmdStats))
}
