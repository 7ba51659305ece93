package gstats

import (
	"reflect"
	"testing"
)

func TestSplitEnvelope(t *testing.T) {
	b := func(ss ...string) [][]byte {
		out := make([][]byte, len(ss))
		for i, s := range ss {
			out[i] = []byte(s)
		}
		return out
	}
	for _, tc := range []struct {
		name           string
		msg            [][]byte
		envelope, body [][]byte
		ok             bool
	}{
		{"REQ request", b("id", "", "STATS"), b("id", ""), b("STATS"), true},
		{"REQ through a proxy", b("id", "hop", "", "INFO"), b("id", "hop", ""), b("INFO"), true},
		{"empty request", b("id", ""), b("id", ""), b(), true},
		{"two frames after the delimiter", b("id", "", "STATS", "x"), b("id", ""), b("STATS", "x"), true},
		{"empty command after the delimiter", b("id", "", ""), b("id", ""), b(""), true},
		{"no delimiter (a DEALER without the envelope)", b("id", "STATS", "INFO"), nil, nil, false},
		{"id only", b("id"), nil, nil, false},
		{"nothing", b(), nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, body, ok := splitEnvelope(tc.msg)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !tc.ok {
				return
			}
			if !reflect.DeepEqual(env, tc.envelope) || len(body) != len(tc.body) || (len(body) > 0 && !reflect.DeepEqual(body, tc.body)) {
				t.Errorf("splitEnvelope(%q) = %q, %q; want %q, %q", tc.msg, env, body, tc.envelope, tc.body)
			}
		})
	}
}
