package allowlist

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseAndAllows(t *testing.T) {
	cases := []struct {
		name    string
		value   string
		want    string // String() of the parsed list
		allowed []string
		refused []string
	}{
		{"original single", "127.0.0.1", "127.0.0.1",
			[]string{"127.0.0.1", "::ffff:127.0.0.1", "127.0.0.1:5555", "[::ffff:127.0.0.1]:80"},
			[]string{"127.0.0.2", "::1", "10.0.0.1"}},
		{"original colon list", "127.0.0.1:10.1.2.3", "127.0.0.1,10.1.2.3",
			[]string{"127.0.0.1", "10.1.2.3"}, []string{"10.1.2.4"}},
		{"original colon list with CIDR", "127.0.0.1:10.0.0.0/8", "127.0.0.1,10.0.0.0/8",
			[]string{"127.0.0.1", "10.9.9.9"}, []string{"11.0.0.1"}},
		{"original colon list, empty parts", ":1.2.3.4::5.6.7.8:", "1.2.3.4,5.6.7.8",
			[]string{"1.2.3.4", "5.6.7.8"}, []string{"1.2.3.5"}},
		{"commas and spaces", "127.0.0.1, ::1", "127.0.0.1,::1",
			[]string{"127.0.0.1", "::1", "[::1]", "[::1]:8002"}, []string{"::2", "127.0.0.2"}},
		{"tabs and newlines", "\t10.0.0.0/8\n192.168.1.0/24  ", "10.0.0.0/8,192.168.1.0/24",
			[]string{"10.200.0.1", "192.168.1.77"}, []string{"192.168.2.1"}},
		{"IPv6 network and bracketed host", "fd00::/8,[2001:db8::1]", "fd00::/8,2001:db8::1",
			[]string{"fd12:3456::1", "2001:db8::1"}, []string{"2001:db8::2"}},
		{"bracketed with length", "[2001:db8::]/32", "2001:db8::/32",
			[]string{"2001:db8:ffff::1"}, []string{"2001:db9::1"}},
		{"zone in client ignored", "fe80::/10", "fe80::/10",
			[]string{"fe80::1%eth0", "[fe80::1%eth0]:80"}, []string{"fd00::1"}},
		{"zone in entry ignored", "fe80::1%eth0", "fe80::1",
			[]string{"fe80::1", "fe80::1%lo"}, []string{"fe80::2"}},
		{"unspecified", "::", "::", []string{"::"}, []string{"::1"}},
		{"everybody", "0.0.0.0/0,::/0", "0.0.0.0/0,::/0",
			[]string{"8.8.8.8", "2001:4860::8888"}, []string{"", "not-an-ip", "[", "1.2.3.4:99999"}},
		{"host bits ignored", "10.1.2.3/8", "10.0.0.0/8", []string{"10.255.0.1"}, []string{"11.0.0.0"}},
		{"netmask", "10.0.0.0/255.0.0.0", "10.0.0.0/8", []string{"10.1.1.1"}, []string{"11.1.1.1"}},
		{"hostmask", "192.168.0.0/0.0.255.255", "192.168.0.0/16", []string{"192.168.9.9"}, []string{"192.169.0.1"}},
		{"zero netmask", "1.2.3.4/0.0.0.0", "0.0.0.0/0", []string{"9.9.9.9"}, []string{"::1"}},
		{"leading zeros in length", "1.2.3.4/08,::1/0128,5.6.7.8/000000000000000000000000009", "1.0.0.0/8,::1,5.0.0.0/9",
			[]string{"1.9.9.9", "::1", "5.6.7.8"}, []string{"2.0.0.0"}},
		{"IPv4-mapped entry", "::ffff:10.0.0.0/104", "10.0.0.0/8", []string{"10.3.3.3", "::ffff:10.3.3.3"}, []string{"11.0.0.1"}},
		{"IPv4-mapped host entry", "::ffff:1.2.3.4", "1.2.3.4", []string{"1.2.3.4"}, []string{"1.2.3.5"}},
		{"empty", "", "", nil, []string{"127.0.0.1", "::1"}},
		{"blank", " ,, \t", "", nil, []string{"127.0.0.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Parse(tc.value)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.value, err)
			}
			if got := l.String(); got != tc.want {
				t.Errorf("Parse(%q) = %q, want %q", tc.value, got, tc.want)
			}
			for _, a := range tc.allowed {
				if !l.AllowsRemote(a) {
					t.Errorf("%q refuses %q", tc.value, a)
				}
			}
			for _, a := range tc.refused {
				if l.AllowsRemote(a) {
					t.Errorf("%q allows %q", tc.value, a)
				}
			}
		})
	}
}

func TestParseRejectsBadEntriesByName(t *testing.T) {
	cases := []struct {
		value       string
		entry, note string // note: the (in "...") part, if any
	}{
		{"localhost", "localhost", ""},
		{"127.0.0.1,10.0.0.300", "10.0.0.300", ""},
		{"127.0.0.1:foo", "foo", `(in "127.0.0.1:foo")`},
		{"10.0.0.0/33", "10.0.0.0/33", ""},
		{"::1/129", "::1/129", ""},
		{"1.2.3.4:::1", "1", `(in "1.2.3.4:::1")`},
		{"1.2.3.4:fe80::1", "fe80", `(in "1.2.3.4:fe80::1")`},
		{"[::1", "[::1", ""},
		{"[::1]x", "[::1]x", ""},
		{"1.2.3.4/", "1.2.3.4/", ""},
		{"1.2.3.4/255.0.255.0", "1.2.3.4/255.0.255.0", ""},
		{"1.2.3.4%eth0", "1.2.3.4%eth0", ""},
		{"::1/ff", "::1/ff", ""},
		{"01.2.3.4", "01.2.3.4", ""},
		{"1.2.3.4/99999999999999999999999999", "1.2.3.4/99999999999999999999999999", ""},
	}
	for _, tc := range cases {
		t.Run(tc.value, func(t *testing.T) {
			l, err := Parse(tc.value)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tc.value, l)
			}
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Entry != tc.entry {
				t.Fatalf("Parse(%q) error %v (%#v), want one naming %q", tc.value, err, ee, tc.entry)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `"`+tc.entry+`"`) || !strings.Contains(msg, "separated by commas") ||
				(tc.note != "" && !strings.Contains(msg, tc.note)) {
				t.Errorf("message %q: want it to start with the entry, mention %q and explain the format", msg, tc.note)
			}
		})
	}
}

func TestParseEntries(t *testing.T) {
	l, err := ParseEntries([]string{"127.0.0.1", "::1, 10.0.0.0/8", "", "192.168.0.1:192.168.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.String(), "127.0.0.1,::1,10.0.0.0/8,192.168.0.1,192.168.0.2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if l.Len() != 5 || len(l.Prefixes()) != 5 {
		t.Errorf("Len %d, Prefixes %v", l.Len(), l.Prefixes())
	}
	if _, err := ParseEntries([]string{"127.0.0.1", "::1 nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("error %v, want one naming \"nope\"", err)
	}
	var zero *List
	if zero.Allows(netip.MustParseAddr("127.0.0.1")) || zero.Len() != 0 || zero.String() != "" {
		t.Error("a nil list must allow nobody")
	}
	if (&List{}).AllowsRemote("127.0.0.1") {
		t.Error("an empty list must allow nobody")
	}
}

// TestSameAsPythonApplication parses the same lists with the Python status
// application (python/src/gstats/wsgi.py) and checks that both accept the
// same lists and allow the same clients.
func TestSameAsPythonApplication(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is needed to compare with the Python application (apt-get install python3 python3-zmq): %v", python, err)
	}
	values := []string{
		"127.0.0.1", "127.0.0.1:10.1.2.3", "127.0.0.1:10.0.0.0/8", ":1.2.3.4::5.6.7.8:", "127.0.0.1, ::1",
		"\t10.0.0.0/8\n192.168.1.0/24", "fd00::/8,[2001:db8::1]", "[2001:db8::]/32", "fe80::/10", "fe80::1%eth0",
		"::", "0.0.0.0/0,::/0", "10.1.2.3/8", "10.0.0.0/255.0.0.0", "192.168.0.0/0.0.255.255", "1.2.3.4/0.0.0.0",
		"1.2.3.4/08,::1/0128", "", " ,, ", "localhost", "127.0.0.1,10.0.0.300", "127.0.0.1:foo", "10.0.0.0/33",
		"1.2.3.4:::1", "1.2.3.4:fe80::1", "[::1", "[::1]x", "1.2.3.4/", "1.2.3.4/255.0.255.0", "1.2.3.4%eth0",
		"::1/ff", "01.2.3.4", "1.2.3.4:[5.6.7.8]", "[1.2.3.4]", "1.2.3.4/24:5.6.7.8", "::1.2.3.4", "1.2.3.4/+8",
		"1.2.3.4/ 8", "::ffff:10.0.0.0/104", "::ffff:1.2.3.4", "::ffff:0:0/95", "5.6.7.8/000000000000000000000000009", "1.2.3.4/99999999999999999999999", "1.2.3.4\x1c5.6.7.8", "1.2.3.4\u00a05.6.7.8", "١.2.3.4", "1.2.3.4/٨",
	}
	clients := []string{"127.0.0.1", "127.0.0.2", "::1", "::2", "10.1.2.3", "10.9.9.9", "11.0.0.1", "1.2.3.4",
		"1.2.3.9", "5.6.7.8", "192.168.1.77", "192.168.9.9", "2001:db8::1", "2001:db8:1::1", "fe80::1", "fe80::1%eth0",
		"fd12::1", "::", "8.8.8.8", "::ffff:127.0.0.1", "0.0.0.1", "garbage", ""}
	in, _ := json.Marshal(map[string]any{"values": values, "clients": clients})
	script := `
import json, sys
from gstats.wsgi import parse_allowed_ips
req = json.load(sys.stdin)
out = []
for v in req["values"]:
    try:
        allow = parse_allowed_ips(v)
    except ValueError:
        out.append(None)
        continue
    out.append([allow.allows(c) for c in req["clients"]])
json.dump(out, sys.stdout)
`
	cmd := exec.Command(python, "-c", script)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join("..", "..", "python", "src"))
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("python: %v", err)
	}
	var want [][]bool
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if len(want) != len(values) {
		t.Fatalf("python answered %d results for %d values", len(want), len(values))
	}
	for i, v := range values {
		l, err := Parse(v)
		if (err != nil) != (want[i] == nil) {
			t.Errorf("Parse(%q): error %v; Python accepts it: %v", v, err, want[i] != nil)
			continue
		}
		if err != nil {
			continue
		}
		got := make([]bool, len(clients))
		for j, c := range clients {
			got[j] = l.AllowsRemote(c)
		}
		if !reflect.DeepEqual(got, want[i]) {
			for j, c := range clients {
				if got[j] != want[i][j] {
					t.Errorf("list %q, client %q: Go allows=%v, Python allows=%v", v, c, got[j], want[i][j])
				}
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "127.0.0.1:10.0.0.0/8", "::1, fd00::/8", "[::1]/128", "10.0.0.0/255.0.0.0",
		"fe80::1%eth0/64", "::ffff:1.2.3.4/120", "1.2.3.4:::1", "", "[", "1.2.3.4/0.255.255.255 ::/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		l, err := Parse(text)
		if err != nil {
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Entry == "" || !strings.Contains(text, ee.Entry) {
				t.Fatalf("Parse(%q): error %v does not name an entry of the input", text, err)
			}
			return
		}
		// The list's own text parses back to the same list.
		again, err := Parse(l.String())
		if err != nil {
			t.Fatalf("Parse(%q) gave %q, which does not parse: %v", text, l.String(), err)
		}
		if !reflect.DeepEqual(again.Prefixes(), l.Prefixes()) {
			t.Fatalf("Parse(%q) = %v; its text %q parses to %v", text, l.Prefixes(), l.String(), again.Prefixes())
		}
		for _, p := range l.Prefixes() {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("Parse(%q): prefix %v is not canonical", text, p)
			}
			if !l.Allows(p.Addr()) {
				t.Fatalf("Parse(%q) = %v refuses its own network address %v", text, l, p.Addr())
			}
		}
	})
}
