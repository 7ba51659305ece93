package gstats

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/gstats/gstats/internal/curvekey"
)

// zapKey is a client key for the ZAP tests: 0, 1, ..., 31.
func zapKey(first byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = first + byte(i)
	}
	return k
}

// zapFrames is a ZAP request as libzmq sends it for a CURVE client.
func zapFrames(domain string, key []byte) [][]byte {
	return [][]byte{[]byte("1.0"), []byte("1"), []byte(domain), []byte("192.0.2.7"), {}, []byte("CURVE"), key}
}

func TestParseZAP(t *testing.T) {
	cases := []struct {
		name   string
		frames [][]byte
		want   zapRequest
		err    string
	}{
		{name: "CURVE", frames: zapFrames("gstats.stats", zapKey(0)),
			want: zapRequest{RequestID: []byte("1"), Domain: "gstats.stats", Address: "192.0.2.7", RoutingID: []byte{}, Mechanism: "CURVE", Credentials: [][]byte{zapKey(0)}}},
		{name: "NULL", frames: [][]byte{[]byte("1.0"), []byte("42"), []byte("d"), []byte(""), []byte("id"), []byte("NULL")},
			want: zapRequest{RequestID: []byte("42"), Domain: "d", RoutingID: []byte("id"), Mechanism: "NULL", Credentials: [][]byte{}}},
		{name: "PLAIN", frames: [][]byte{[]byte("1.0"), []byte("7"), []byte("d"), []byte("10.0.0.1"), nil, []byte("PLAIN"), []byte("user"), []byte("pass")},
			want: zapRequest{RequestID: []byte("7"), Domain: "d", Address: "10.0.0.1", RoutingID: []byte{}, Mechanism: "PLAIN", Credentials: [][]byte{[]byte("user"), []byte("pass")}}},
		{name: "no frames", frames: nil, err: "has 0 frames, want at least 6"},
		{name: "five frames", frames: zapFrames("d", zapKey(0))[:5], err: "has 5 frames"},
		{name: "version 2.0", frames: append([][]byte{[]byte("2.0")}, zapFrames("d", zapKey(0))[1:]...), err: `ZAP version "2.0", want "1.0"`},
		{name: "empty version", frames: append([][]byte{{}}, zapFrames("d", zapKey(0))[1:]...), err: `ZAP version ""`},
		{name: "CURVE without key", frames: zapFrames("d", zapKey(0))[:6], err: "has 0 credential frames, want 1"},
		{name: "CURVE two keys", frames: append(zapFrames("d", zapKey(0)), zapKey(1)), err: "has 2 credential frames"},
		{name: "CURVE short key", frames: zapFrames("d", zapKey(0)[:31]), err: "31-byte client key, want 32"},
		{name: "CURVE Z85 key", frames: zapFrames("d", []byte(strings.Repeat("a", 40))), err: "40-byte client key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseZAP(tc.frames)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseZAP() = %+v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.RequestID, tc.want.RequestID) || got.Domain != tc.want.Domain || got.Address != tc.want.Address ||
				!bytes.Equal(got.RoutingID, tc.want.RoutingID) || got.Mechanism != tc.want.Mechanism ||
				!slices.EqualFunc(got.Credentials, tc.want.Credentials, bytes.Equal) {
				t.Errorf("parseZAP() = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseZAPKeepsNoReference(t *testing.T) {
	frames := zapFrames("gstats.stats", zapKey(0))
	r, err := parseZAP(frames)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		for i := range f {
			f[i] = 'x'
		}
	}
	if !bytes.Equal(r.Credentials[0], zapKey(0)) || string(r.RequestID) != "1" {
		t.Error("the parsed request changed with the frames it was parsed from")
	}
}

func TestDecideZAP(t *testing.T) {
	domains := map[string]string{"gstats.stats": "stats", "gstats.control": "control"}
	allowed := [32]byte(zapKey(0))
	keys := map[[32]byte]string{allowed: "web1.key"}
	z85, err := curvekey.Encode(zapKey(0))
	if err != nil {
		t.Fatal(err)
	}
	strangerZ85, _ := curvekey.Encode(zapKey(100))
	cases := []struct {
		name     string
		frames   [][]byte
		status   string
		text     string
		id       string
		userID   string
		key      string
		socket   string
		peer     string
		nFrames  int // reply frames
		refusals int
	}{
		{name: "allowed key on stats", frames: zapFrames("gstats.stats", zapKey(0)),
			status: "200", text: "OK", id: "1", userID: z85, key: z85, socket: "stats", peer: "192.0.2.7"},
		{name: "allowed key on control", frames: zapFrames("gstats.control", zapKey(0)),
			status: "200", text: "OK", id: "1", userID: z85, key: z85, socket: "control", peer: "192.0.2.7"},
		{name: "unknown key", frames: zapFrames("gstats.stats", zapKey(100)),
			status: "400", text: "client key not allowed", id: "1", key: strangerZ85, socket: "stats", peer: "192.0.2.7"},
		{name: "unknown domain", frames: zapFrames("other", zapKey(0)),
			status: "400", text: `unknown ZAP domain "other"`, id: "1", peer: "192.0.2.7"},
		{name: "empty domain", frames: zapFrames("", zapKey(0)),
			status: "400", text: `unknown ZAP domain ""`, id: "1", peer: "192.0.2.7"},
		{name: "NULL mechanism", frames: [][]byte{[]byte("1.0"), []byte("9"), []byte("gstats.stats"), []byte("192.0.2.7"), nil, []byte("NULL")},
			status: "400", text: `mechanism "NULL" refused: CURVE is required`, id: "9", socket: "stats", peer: "192.0.2.7"},
		{name: "PLAIN mechanism", frames: [][]byte{[]byte("1.0"), []byte("9"), []byte("gstats.control"), nil, nil, []byte("PLAIN"), []byte("u"), []byte("p")},
			status: "400", text: `mechanism "PLAIN" refused`, id: "9", socket: "control"},
		{name: "malformed: short key", frames: zapFrames("gstats.stats", zapKey(0)[:16]),
			status: "500", text: "malformed ZAP request: CURVE ZAP request has a 16-byte client key", id: "1"},
		{name: "malformed: bad version", frames: append([][]byte{[]byte("0.9")}, zapFrames("gstats.stats", zapKey(0))[1:]...),
			status: "500", text: "malformed ZAP request: ZAP version", id: "1"},
		{name: "malformed: one frame", frames: [][]byte{[]byte("1.0")},
			status: "500", text: "has 1 frames", id: ""},
		{name: "malformed: nothing", frames: nil,
			status: "500", text: "has 0 frames", id: ""},
		{name: "binary request id echoed", frames: [][]byte{[]byte("1.0"), {0, 0xff, 7}, []byte("gstats.stats"), nil, nil, []byte("CURVE"), zapKey(0)},
			status: "200", text: "OK", id: "\x00\xff\x07", userID: z85, key: z85, socket: "stats"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reply, d := decideZAP(tc.frames, domains, keys)
			if len(reply) != 6 {
				t.Fatalf("reply has %d frames, want 6: %q", len(reply), reply)
			}
			if string(reply[0]) != "1.0" || string(reply[1]) != tc.id || string(reply[2]) != tc.status ||
				!strings.Contains(string(reply[3]), tc.text) || string(reply[4]) != tc.userID || len(reply[5]) != 0 {
				t.Errorf("reply %q\nwant [1.0 %q %s ...%s... %q \"\"]", reply, tc.id, tc.status, tc.text, tc.userID)
			}
			if d.Status != tc.status || d.Key != tc.key || d.Socket != tc.socket || d.Peer != tc.peer || d.Text != string(reply[3]) {
				t.Errorf("decision %+v\nwant status %s, key %q, socket %q, peer %q", d, tc.status, tc.key, tc.socket, tc.peer)
			}
		})
	}
}

// zapFuzzFrames splits fuzz input into frames: each is a length byte then
// that many bytes (fewer at the end of the input).
func zapFuzzFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) > 0 {
		n := min(int(data[0]), len(data)-1)
		frames = append(frames, data[1:1+n])
		data = data[1+n:]
	}
	return frames
}

// zapFuzzInput is the inverse of zapFuzzFrames, for seeds (frames of at
// most 255 bytes).
func zapFuzzInput(frames [][]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	return b
}

func TestZAPFuzzEncoding(t *testing.T) {
	frames := zapFrames("gstats.stats", zapKey(0))
	got := zapFuzzFrames(zapFuzzInput(frames))
	if !slices.EqualFunc(got, frames, bytes.Equal) {
		t.Fatalf("round trip: %q, want %q", got, frames)
	}
}

// FuzzParseZAP checks that no request crashes the handler, that every
// request gets a well-formed reply echoing its id, and that only a CURVE
// request with an allowed key on a known domain is let in.
func FuzzParseZAP(f *testing.F) {
	for _, frames := range [][][]byte{
		zapFrames("gstats.stats", zapKey(0)),
		zapFrames("gstats.control", zapKey(100)),
		zapFrames("other", zapKey(0)),
		{[]byte("1.0"), []byte("1"), []byte("gstats.stats"), nil, nil, []byte("NULL")},
		{[]byte("1.0"), []byte("1"), []byte("gstats.control"), []byte("::1"), []byte("id"), []byte("PLAIN"), []byte("admin"), []byte("secret")},
		{[]byte("1.0")},
		{},
	} {
		f.Add(zapFuzzInput(frames))
	}
	domains := map[string]string{"gstats.stats": "stats", "gstats.control": "control"}
	keys := map[[32]byte]string{[32]byte(zapKey(0)): "web1.key"}
	f.Fuzz(func(t *testing.T, data []byte) {
		frames := zapFuzzFrames(data)
		req, err := parseZAP(frames)
		if err == nil {
			if len(frames) < 6 || string(frames[0]) != "1.0" || req.Domain != string(frames[2]) || req.Mechanism != string(frames[5]) ||
				len(req.Credentials) != len(frames)-6 {
				t.Fatalf("parseZAP(%q) = %+v", frames, req)
			}
			if req.Mechanism == "CURVE" && (len(req.Credentials) != 1 || len(req.Credentials[0]) != 32) {
				t.Fatalf("CURVE request accepted with credentials %q", req.Credentials)
			}
		}
		reply, d := decideZAP(frames, domains, keys)
		if len(reply) != 6 || string(reply[0]) != "1.0" {
			t.Fatalf("reply %q", reply)
		}
		if len(frames) >= 2 && !bytes.Equal(reply[1], frames[1]) {
			t.Fatalf("reply id %q, request id %q", reply[1], frames[1])
		}
		let := err == nil && domains[req.Domain] != "" && req.Mechanism == "CURVE" && keys[[32]byte(req.Credentials[0])] != ""
		switch string(reply[2]) {
		case "200":
			if !let || len(reply[4]) != 40 {
				t.Fatalf("%q let in: %q", frames, reply)
			}
		case "400":
			if let || err != nil {
				t.Fatalf("%q refused with 400 (parse error %v)", frames, err)
			}
		case "500":
			if err == nil {
				t.Fatalf("%q answered 500 but parses", frames)
			}
		default:
			t.Fatalf("status %q", reply[2])
		}
		if d.Status != string(reply[2]) {
			t.Fatalf("decision %+v, reply %q", d, reply)
		}
	})
}
