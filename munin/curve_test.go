package munin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gstats/gstats/internal/curvekey"
)

// writeKeys writes a new key pair as dir/name.key and dir/name.key_secret.
func writeKeys(t *testing.T, dir, name string) (curvekey.Pair, string, string) {
	t.Helper()
	p, err := curvekey.Generate()
	if err != nil {
		t.Fatalf("%v (Debian's libzmq5 has CURVE)", err)
	}
	pub, sec, err := curvekey.Write(filepath.Join(dir, name), p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p, pub, sec
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	server, serverPub, _ := writeKeys(t, dir, "collector")
	client, clientPub, clientSec := writeKeys(t, dir, "munin")
	loose := filepath.Join(dir, "loose.key_secret")
	b, err := os.ReadFile(clientSec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, b, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o640); err != nil {
		t.Fatal(err)
	}
	curve := func(serverKey, clientKey string) Curve {
		return Curve{ServerKey: serverKey, ClientKey: clientKey, ServerFrom: "env.curve_server_key", ClientFrom: "env.curve_client_key"}
	}
	tests := []struct {
		name  string
		curve Curve
		err   string // "" for none
	}{
		{"no CURVE", Curve{}, ""},
		{"key files", curve(serverPub, clientSec), ""},
		{"server key in Z85", curve(server.Public, clientSec), ""},
		{"server key neither", curve("nope", clientSec), `env.curve_server_key: the collector's public key: "nope" is neither a 40-character Z85 key nor a key file (if the key has a # in it, write it \# in plugin-conf.d, or give the key file)`},
		{"GSTATS_ variable, no plugin-conf.d hint", Curve{ServerKey: "abc", ClientKey: clientSec, ServerFrom: "GSTATS_CURVE_SERVER_KEY", ClientFrom: "GSTATS_CURVE_CLIENT_KEY"},
			`GSTATS_CURVE_SERVER_KEY: the collector's public key: "abc" is neither a 40-character Z85 key nor a key file`},
		{"public file as the client's", curve(serverPub, clientPub), "env.curve_client_key: CURVE key file " + clientPub + " holds no secret-key"},
		{"readable by the group", curve(serverPub, loose), "env.curve_client_key: CURVE secret key file " + loose + " has mode 0640"},
		{"missing", curve(serverPub, filepath.Join(dir, "nope")), "env.curve_client_key: CURVE secret key file: stat "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadKeys(tt.curve)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want one containing %q", err, tt.err)
				}
				if err != nil && tt.curve.ServerFrom != "env.curve_server_key" && strings.Contains(err.Error(), "plugin-conf.d") {
					t.Errorf("error %v: a hint about plugin-conf.d for a setting from %s", err, tt.curve.ServerFrom)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := [3]string{}
			if tt.curve.On() {
				want = [3]string{server.Public, client.Public, client.Secret}
			}
			if got := [3]string{k.ServerKey, k.Public, k.Secret}; got != want {
				t.Errorf("keys %q, want %q", got, want)
			}
		})
	}
}

func TestCurveSettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Curve
		err  string
	}{
		{"none", nil, Curve{}, ""},
		{"blank", map[string]string{EnvCurveServerKey: " ", EnvCurveClientKey: "\t"}, Curve{}, ""},
		{"munin names", map[string]string{EnvCurveServerKey: "s", EnvCurveClientKey: "c"}, Curve{"s", "c", "env.curve_server_key", "env.curve_client_key"}, ""},
		{"GSTATS_ names", map[string]string{EnvGstatsCurveServerKey: "s", EnvGstatsCurveClientKey: "c"}, Curve{"s", "c", "GSTATS_CURVE_SERVER_KEY", "GSTATS_CURVE_CLIENT_KEY"}, ""},
		{"munin names first", map[string]string{EnvCurveServerKey: "s", EnvGstatsCurveServerKey: "S", EnvCurveClientKey: "c", EnvGstatsCurveClientKey: "C"},
			Curve{"s", "c", "env.curve_server_key", "env.curve_client_key"}, ""},
		{"server only", map[string]string{EnvCurveServerKey: "s"}, Curve{}, "env.curve_server_key is set but not env.curve_client_key (nor GSTATS_CURVE_CLIENT_KEY)"},
		{"client only", map[string]string{EnvGstatsCurveClientKey: "c"}, Curve{}, "GSTATS_CURVE_CLIENT_KEY is set but not env.curve_server_key (nor GSTATS_CURVE_SERVER_KEY)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CurveSettings(func(k string) string { return tt.env[k] })
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("CurveSettings = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
