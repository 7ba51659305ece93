package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gstats/gstats/internal/testport"
)

// influxdPath is Debian's InfluxDB 1.x server.
const influxdPath = "/usr/bin/influxd"

// influxDB is a running influxd on loopback with its data in a temporary
// directory.
type influxDB struct {
	proc *process
	// URL is the HTTP API, e.g. http://127.0.0.1:40123.
	URL    string
	client *http.Client
}

var influxdCheck = sync.OnceValue(func() error {
	if _, err := os.Stat(influxdPath); err != nil {
		return fmt.Errorf("influxd not found (%w); install with: apt-get install influxdb influxdb-client", err)
	}
	return nil
})

// startInfluxDB starts influxd with HTTP and RPC bound to loopback ports
// from testport, waits for /ping, and stops it in t.Cleanup.
func startInfluxDB(t *testing.T) *influxDB {
	t.Helper()
	if err := influxdCheck(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// influxd cannot report a port it chose itself: testport holds both
	// ports for the test, so nothing takes them before influxd binds them.
	httpAddr, rpcAddr := testport.Addr(t), testport.Addr(t)
	data := filepath.Join(dir, "var")
	conf := fmt.Sprintf(`reporting-enabled = false
bind-address = %q
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = %q
  log-enabled = false
[continuous_queries]
  enabled = false
`, rpcAddr, filepath.Join(data, "meta"), filepath.Join(data, "data"), filepath.Join(data, "wal"), httpAddr)
	confPath := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "influxd", exec.Command(influxdPath, "run", "-config", confPath), false)
	t.Cleanup(func() { p.stop(t, false) })
	db := &influxDB{proc: p, URL: "http://" + httpAddr, client: newHTTPClient(t)}
	if err := db.waitPing(); err != nil {
		t.Fatalf("%v\n%s", err, p.log())
	}
	return db
}

func (db *influxDB) waitPing() error {
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := db.client.Get(db.URL + "/ping")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if db.proc.exited() {
			return fmt.Errorf("influxd exited before answering /ping: %v", db.proc.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("influxd did not answer /ping on %s within %s: %v", db.URL, startTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// series is one series of an InfluxQL result.
type series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// query runs an InfluxQL query against database db and returns the series
// of its single statement.
func (db *influxDB) query(t *testing.T, database, q string) []series {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	u := db.URL + "/query?" + url.Values{"db": {database}, "q": {q}, "epoch": {"ns"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := db.client.Do(req)
	if err != nil {
		t.Fatalf("InfluxQL %q: %v", q, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Results []struct {
			Series []series `json:"series"`
			Error  string   `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("InfluxQL %q: decoding the reply (status %d): %v", q, resp.StatusCode, err)
	}
	if body.Error != "" {
		t.Fatalf("InfluxQL %q: %s", q, body.Error)
	}
	if len(body.Results) != 1 {
		t.Fatalf("InfluxQL %q: %d results, want 1", q, len(body.Results))
	}
	if e := body.Results[0].Error; e != "" {
		// A database that does not exist yet reads as no data.
		if strings.Contains(e, "database not found") {
			return nil
		}
		t.Fatalf("InfluxQL %q: %s", q, e)
	}
	return body.Results[0].Series
}

// lastFields returns the newest point of measurement for prefix as a map
// from field name to value (nil if there is none yet).
func (db *influxDB) lastFields(t *testing.T, database, measurement, prefix string) map[string]any {
	t.Helper()
	q := fmt.Sprintf(`SELECT * FROM %q WHERE "prefix" = '%s' ORDER BY time DESC LIMIT 1`, measurement, strings.ReplaceAll(prefix, `'`, `\'`))
	ss := db.query(t, database, q)
	if len(ss) == 0 || len(ss[0].Values) == 0 {
		return nil
	}
	out := map[string]any{}
	for i, c := range ss[0].Columns {
		out[c] = ss[0].Values[0][i]
	}
	return out
}

// waitFields polls lastFields until cond holds, and returns those fields.
func (db *influxDB) waitFields(t *testing.T, database, measurement, prefix, what string, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(settleTimeout)
	var last map[string]any
	for {
		last = db.lastFields(t, database, measurement, prefix)
		if last != nil && cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("InfluxDB %s: %s for prefix %q not seen within %s; last point: %v", database, what, prefix, settleTimeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// num reads a JSON number field as float64 (missing or null gives -1).
func num(fields map[string]any, name string) float64 {
	if v, ok := fields[name].(float64); ok {
		return v
	}
	return -1
}
