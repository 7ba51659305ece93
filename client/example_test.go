package client_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/gstats/gstats/client"
)

// Every request the server handles is reported under "my_app".
func ExampleClient_Middleware() {
	c, err := client.New(client.Options{Address: "tcp://127.0.0.2:2345", Prefix: "my_app"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello\n")
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", c.Middleware(mux)))
}

// Routes reported under prefixes of their own.
func ExampleClient_Handler() {
	c, err := client.New(client.Options{Prefix: "my_app"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	api, err := c.Handler("my_app_api", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", api)
	mux.Handle("/", c.Middleware(http.FileServer(http.Dir("/var/www"))))
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mux))
}

// Timing work that is not an HTTP request: status 0 sends none.
func ExampleClient_Finish() {
	c, err := client.New(client.Options{Prefix: "jobs"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	t0 := time.Now()
	c.Start("")
	time.Sleep(10 * time.Millisecond) // the job
	c.Finish("", time.Since(t0), 0)
}

// Checking prefixes that come from configuration before serving.
func ExampleValidatePrefix() {
	for _, p := range []string{"my_app", strings.Repeat("x", 300)} {
		fmt.Println(client.ValidatePrefix(p) == nil)
	}
	// Output:
	// true
	// false
}

// Sending over ZeroMQ CURVE: the collector's public key file and this
// client's secret key file, as gstatsctl keygen writes them. The
// collector's curve_client_keys must list web-1.key.
func ExampleOptions_LoadCurveKeys() {
	opts := client.Options{Address: "tcp://10.0.0.5:2345", Prefix: "my_app"}
	if err := opts.LoadCurveKeys("/etc/gstats/collector.key", "/etc/gstats/web-1.key_secret"); err != nil {
		log.Fatal(err)
	}
	c, err := client.New(opts)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", c.Middleware(http.NotFoundHandler())))
}
