// Command gstats-munin answers munin for the gstats plug-ins. The plug-in
// scripts in munin/plugins run it as
//
//	gstats-munin PLUGIN-NAME [config|autoconf|suggest]
//
// with their own name (gunicorn-requests_<label>, ...). It asks the
// collector for STATS over the control socket, never waiting longer than
// env.timeout (3 s by default), with CURVE when env.curve_server_key and
// env.curve_client_key are set, and prints what munin expects; see package
// munin for the output.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gstats/gstats/munin"
	"github.com/gstats/gstats/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := munin.Run(ctx, os.Args[1:], os.Getenv, stats, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stats sends STATS to the control socket of t, reading the CURVE key
// files first if there are any; its errors name the command, the address
// and the likely cause, or the setting that is wrong.
func stats(ctx context.Context, t munin.Target) ([]byte, error) {
	keys, err := munin.LoadKeys(t.Curve)
	if err != nil {
		return nil, err
	}
	opts := wire.ClientOptions{Address: t.Address, Timeout: t.Timeout,
		CurveServerKey: keys.ServerKey, CurvePublicKey: keys.Public, CurveSecretKey: keys.Secret}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return wire.NewClient(opts).Do(ctx, string(wire.CmdStats))
}
