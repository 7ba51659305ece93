package wire_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gstats/gstats/wire"
)

// testLimits are the limits of most tests: a short prefix limit so that it
// is easy to cross, and the collector's default max_duration (24h).
var testLimits = wire.Limits{MaxPrefixLength: 16, MaxDuration: 86_400_000}

// frames builds a multipart message from strings.
func frames(parts ...string) [][]byte {
	f := make([][]byte, len(parts))
	for i, p := range parts {
		f[i] = []byte(p)
	}
	return f
}

// rejectReason returns the Reason of a *wire.RejectError, failing the test
// if err is not one.
func rejectReason(t *testing.T, err error) wire.Reason {
	t.Helper()
	var rej *wire.RejectError
	if !errors.As(err, &rej) {
		t.Fatalf("error %v (%T) is not a *wire.RejectError", err, err)
	}
	if !strings.HasPrefix(err.Error(), string(rej.Reason)+": ") || rej.Detail == "" {
		t.Errorf("error text %q should be %q followed by a detail", err.Error(), rej.Reason+": ")
	}
	return rej.Reason
}

func TestParseMessage(t *testing.T) {
	long16 := strings.Repeat("a", 16)
	long17 := strings.Repeat("a", 17)
	utf16 := strings.Repeat("é", 8) // 16 bytes, 8 runes
	utf18 := strings.Repeat("é", 9) // 18 bytes, 9 runes
	finish := func(prefix string, ms float64, status int) wire.Message {
		return wire.Message{Prefix: []byte(prefix), Kind: wire.Finish, Duration: ms, Status: status}
	}
	start := func(prefix string) wire.Message {
		return wire.Message{Prefix: []byte(prefix), Kind: wire.Start}
	}
	cases := []struct {
		name   string
		frames [][]byte
		lim    wire.Limits // testLimits when zero
		want   wire.Message
		reason wire.Reason // "" when the message is accepted
	}{
		// PROTOCOL.md examples.
		{name: "start", frames: frames("my_app", ""), want: start("my_app")},
		{name: "finish 153", frames: frames("my_app", "153"), want: finish("my_app", 153, 0)},
		{name: "finish 12.5", frames: frames("my_app", "12.5"), want: finish("my_app", 12.5, 0)},
		{name: "finish 0 is a 0 ms request", frames: frames("my_app", "0"), want: finish("my_app", 0, 0)},
		{name: "empty prefix start is default", frames: frames("", ""), want: start("default")},
		{name: "empty prefix finish is default", frames: frames("", "153"), want: finish("default", 153, 0)},

		// Optional status frame.
		{name: "status 200", frames: frames("my_app", "153", "200"), want: finish("my_app", 153, 200)},
		{name: "status 404", frames: frames("my_app", "1", "404"), want: finish("my_app", 1, 404)},
		{name: "status 599", frames: frames("my_app", "0", "599"), want: finish("my_app", 0, 599)},
		{name: "status 100", frames: frames("my_app", "0", "100"), want: finish("my_app", 0, 100)},
		{name: "status with blanks", frames: frames("my_app", "7", " 200\n"), want: finish("my_app", 7, 200)},
		{name: "status 99", frames: frames("my_app", "153", "99"), reason: wire.ReasonBadStatus},
		{name: "status 099", frames: frames("my_app", "153", "099"), reason: wire.ReasonBadStatus},
		{name: "status 600", frames: frames("my_app", "153", "600"), reason: wire.ReasonBadStatus},
		{name: "status abc", frames: frames("my_app", "153", "abc"), reason: wire.ReasonBadStatus},
		{name: "status empty", frames: frames("my_app", "153", ""), reason: wire.ReasonBadStatus},
		{name: "status 2000", frames: frames("my_app", "153", "2000"), reason: wire.ReasonBadStatus},
		{name: "status +20", frames: frames("my_app", "153", "+20"), reason: wire.ReasonBadStatus},
		{name: "status 2e2", frames: frames("my_app", "153", "2e2"), reason: wire.ReasonBadStatus},
		{name: "bad duration is reported before status", frames: frames("my_app", "x", "999"), reason: wire.ReasonBadDuration},

		// Frame count.
		{name: "status frame on a start", frames: frames("my_app", "", "200"), reason: wire.ReasonFrames},
		{name: "no frames", frames: nil, reason: wire.ReasonFrames},
		{name: "one frame", frames: frames("my_app"), reason: wire.ReasonFrames},
		{name: "four frames", frames: frames("my_app", "153", "200", "x"), reason: wire.ReasonFrames},
		{name: "frame count before prefix", frames: frames(long17), reason: wire.ReasonFrames},

		// Prefix.
		{name: "prefix at the limit", frames: frames(long16, ""), want: start(long16)},
		{name: "prefix over the limit", frames: frames(long17, ""), reason: wire.ReasonPrefixTooLong},
		{name: "prefix limit counts bytes", frames: frames(utf16, "1"), want: finish(utf16, 1, 0)},
		{name: "prefix over the limit in bytes", frames: frames(utf18, "1"), reason: wire.ReasonPrefixTooLong},
		{name: "prefix not UTF-8", frames: frames("\xff\xfeapp", ""), reason: wire.ReasonPrefixNotUTF8},
		{name: "prefix truncated UTF-8", frames: frames("caf\xc3", "1"), reason: wire.ReasonPrefixNotUTF8},
		{name: "prefix length before UTF-8", frames: frames(strings.Repeat("\xff", 17), ""), reason: wire.ReasonPrefixTooLong},
		{name: "prefix checked before duration", frames: frames("\xff", "nope"), reason: wire.ReasonPrefixNotUTF8},
		{name: "empty prefix with a limit under len(default)", frames: frames("", "5"), lim: wire.Limits{MaxPrefixLength: 1, MaxDuration: 10}, want: finish("default", 5, 0)},

		// Duration.
		{name: "not a number", frames: frames("my_app", "abc"), reason: wire.ReasonBadDuration},
		{name: "unit suffix", frames: frames("my_app", "12ms"), reason: wire.ReasonBadDuration},
		{name: "blank duration is not a start", frames: frames("my_app", " "), reason: wire.ReasonBadDuration},
		{name: "negative", frames: frames("my_app", "-1"), reason: wire.ReasonNegativeDuration},
		{name: "negative fraction", frames: frames("my_app", "-0.5"), reason: wire.ReasonNegativeDuration},
		{name: "minus zero is zero", frames: frames("my_app", "-0"), want: finish("my_app", 0, 0)},
		{name: "NaN", frames: frames("my_app", "NaN"), reason: wire.ReasonNonFinite},
		{name: "nan", frames: frames("my_app", "nan"), reason: wire.ReasonNonFinite},
		{name: "Inf", frames: frames("my_app", "Inf"), reason: wire.ReasonNonFinite},
		{name: "+infinity", frames: frames("my_app", "+infinity"), reason: wire.ReasonNonFinite},
		{name: "-Inf", frames: frames("my_app", "-Inf"), reason: wire.ReasonNonFinite},
		{name: "overflow 1e400", frames: frames("my_app", "1e400"), reason: wire.ReasonNonFinite},
		{name: "overflow -1e400", frames: frames("my_app", "-1e400"), reason: wire.ReasonNonFinite},
		{name: "underflow 1e-400 is zero", frames: frames("my_app", "1e-400"), want: finish("my_app", 0, 0)},
		{name: "at max_duration", frames: frames("my_app", "86400000"), want: finish("my_app", 86_400_000, 0)},
		{name: "over max_duration", frames: frames("my_app", "86400000.5"), reason: wire.ReasonDurationTooLarge},
		{name: "far over max_duration", frames: frames("my_app", "1e300"), reason: wire.ReasonDurationTooLarge},
		{name: "blank padded", frames: frames("my_app", " 12 "), want: finish("my_app", 12, 0)},
		{name: "tab and newline padded", frames: frames("my_app", "\t12.5\n"), want: finish("my_app", 12.5, 0)},
		{name: "hex integer", frames: frames("my_app", "0x10"), reason: wire.ReasonBadDuration},
		{name: "hex float", frames: frames("my_app", "0x1p4"), reason: wire.ReasonBadDuration},
		{name: "hex upper case", frames: frames("my_app", "0X1P4"), reason: wire.ReasonBadDuration},
		{name: "underscores as in Python float()", frames: frames("my_app", "1_000"), want: finish("my_app", 1000, 0)},
		{name: "doubled underscore", frames: frames("my_app", "1__000"), reason: wire.ReasonBadDuration},
		{name: "exponent", frames: frames("my_app", "1.5e3"), want: finish("my_app", 1500, 0)},
		{name: "leading plus", frames: frames("my_app", "+7"), want: finish("my_app", 7, 0)},
		{name: "trailing dot", frames: frames("my_app", "12."), want: finish("my_app", 12, 0)},
		{name: "leading dot", frames: frames("my_app", ".5"), want: finish("my_app", 0.5, 0)},
		{name: "two numbers", frames: frames("my_app", "1 2"), reason: wire.ReasonBadDuration},
		{name: "comma decimal", frames: frames("my_app", "12,5"), reason: wire.ReasonBadDuration},
		{name: "NUL byte", frames: frames("my_app", "12\x00"), reason: wire.ReasonBadDuration},
		{name: "very long", frames: frames("my_app", strings.Repeat("9", 100)), reason: wire.ReasonBadDuration},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lim := tc.lim
			if lim == (wire.Limits{}) {
				lim = testLimits
			}
			got, err := wire.ParseMessage(tc.frames, lim)
			if tc.reason != "" {
				if err == nil {
					t.Fatalf("ParseMessage(%q) = %+v, want rejection %s", tc.frames, got, tc.reason)
				}
				if r := rejectReason(t, err); r != tc.reason {
					t.Fatalf("ParseMessage(%q): reason %s (%v), want %s", tc.frames, r, err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMessage(%q): %v", tc.frames, err)
			}
			if string(got.Prefix) != string(tc.want.Prefix) || got.Kind != tc.want.Kind ||
				got.Duration != tc.want.Duration || got.Status != tc.want.Status {
				t.Fatalf("ParseMessage(%q) = {%q %d %v %d}, want {%q %d %v %d}", tc.frames,
					got.Prefix, got.Kind, got.Duration, got.Status,
					tc.want.Prefix, tc.want.Kind, tc.want.Duration, tc.want.Status)
			}
			if math.Signbit(got.Duration) {
				t.Fatalf("ParseMessage(%q): duration is -0, which would be reported as \"-0.0\"", tc.frames)
			}
		})
	}
}

// TestReasonsAreListed checks that every reason ParseMessage gives is in
// wire.AllReasons() (they are counters in INFO) and that the list has no
// duplicates.
func TestReasonsAreListed(t *testing.T) {
	seen := map[wire.Reason]bool{}
	for _, r := range wire.AllReasons() {
		if seen[r] {
			t.Errorf("reason %q listed twice", r)
		}
		seen[r] = true
		if r == "" || strings.ToLower(string(r)) != string(r) || strings.ContainsAny(string(r), " -.") {
			t.Errorf("reason %q is not a snake_case identifier", r)
		}
	}
	bad := [][][]byte{
		frames("x"),
		frames(strings.Repeat("a", 17), ""),
		frames("\xff", ""),
		frames("a", "x"),
		frames("a", "-1"),
		frames("a", "NaN"),
		frames("a", "1e100"),
		frames("a", "1", "1"),
	}
	for _, f := range bad {
		_, err := wire.ParseMessage(f, testLimits)
		if err == nil {
			t.Fatalf("ParseMessage(%q) accepted", f)
		}
		if r := rejectReason(t, err); !slices.Contains(wire.AllReasons(), r) {
			t.Errorf("ParseMessage(%q): reason %q is not in wire.AllReasons()", f, r)
		}
	}
}

// TestRejectErrorDetail checks that the detail of a rejection quotes the
// offending value, cut short when it is long, so a log line stays short.
func TestRejectErrorDetail(t *testing.T) {
	_, err := wire.ParseMessage(frames("my_app", "12ms"), testLimits)
	if err == nil || !strings.Contains(err.Error(), `"12ms"`) {
		t.Errorf("error %v should quote the duration \"12ms\"", err)
	}
	_, err = wire.ParseMessage(frames(strings.Repeat("p", 1000), ""), testLimits)
	if err == nil {
		t.Fatal("a 1000-byte prefix was accepted")
	}
	if msg := err.Error(); len(msg) > 300 || !strings.Contains(msg, "(1000 bytes)") || !strings.Contains(msg, "max_prefix_length = 16") {
		t.Errorf("error %q should be short, give the prefix size and name the limit", msg)
	}
	_, err = wire.ParseMessage(frames("my_app", "86400001"), testLimits)
	if err == nil || !strings.Contains(err.Error(), "max_duration (86400000.0 ms)") {
		t.Errorf("error %v should name max_duration and its value", err)
	}
}

func TestQuote(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"abc", 3, `"abc"`},
		{"", 3, `""`},
		{"abcd", 3, `"abc"...(4 bytes)`},
		{"\xff\x00", 8, `"\xff\x00"`},
		{"é", 1, `"\xc3"...(2 bytes)`},
	}
	for _, tc := range cases {
		if got := wire.Quote([]byte(tc.in), tc.max); got != tc.want {
			t.Errorf("Quote(%q, %d) = %s, want %s", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	cases := []struct {
		in   string
		want int // 0: rejected
	}{
		{"100", 100}, {"200", 200}, {"404", 404}, {"599", 599}, {" 302 ", 302},
		{"99", 0}, {"600", 0}, {"abc", 0}, {"", 0}, {"-200", 0}, {"20 0", 0}, {"0x1", 0}, {"1e2", 0},
	}
	for _, tc := range cases {
		got, err := wire.ParseStatus([]byte(tc.in))
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("ParseStatus(%q) = %d, want rejection", tc.in, got)
		case tc.want == 0:
			if r := rejectReason(t, err); r != wire.ReasonBadStatus {
				t.Errorf("ParseStatus(%q): reason %s, want %s", tc.in, r, wire.ReasonBadStatus)
			}
		case err != nil || got != tc.want:
			t.Errorf("ParseStatus(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatFloat(t *testing.T) {
	// The expectations are Python's repr() of the same values, which is
	// what the original collector's json module and gstatsctl printed.
	cases := []struct {
		in   float64
		want string
	}{
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{153.2, "153.2"},
		{20.1, "20.1"},
		{12.0, "12.0"},
		{0.1, "0.1"},
		{0.30000000000000004, "0.30000000000000004"},
		{1.0 / 3, "0.3333333333333333"},
		{1e-05, "1e-05"},
		{1.5e-05, "1.5e-05"},
		{0.0001, "0.0001"},
		{9.999999999999999e-05, "9.999999999999999e-05"},
		{123456789, "123456789.0"},
		{1e15, "1000000000000000.0"},
		{9999999999999998, "9999999999999998.0"},
		{1 << 53, "9007199254740992.0"},
		{1e16, "1e+16"},
		{1e22, "1e+22"},
		{1234567890123456789, "1.2345678901234568e+18"},
		{math.MaxFloat64, "1.7976931348623157e+308"},
		{5e-324, "5e-324"},
		{2.2250738585072014e-308, "2.2250738585072014e-308"},
		{-153.2, "-153.2"},
		{-12, "-12.0"},
		{-1e-05, "-1e-05"},
		{-1e16, "-1e+16"},
		// Not representable in JSON: reported as 0.0 rather than
		// breaking the reply.
		{math.NaN(), "0.0"},
		{math.Inf(1), "0.0"},
		{math.Inf(-1), "0.0"},
	}
	for _, tc := range cases {
		if got := wire.FormatFloat(tc.in); got != tc.want {
			t.Errorf("FormatFloat(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if got := string(wire.AppendFloat([]byte("x="), tc.in)); got != "x="+tc.want {
			t.Errorf("AppendFloat(\"x=\", %v) = %q, want %q", tc.in, got, "x="+tc.want)
		}
	}
}

// TestFormatFloatRoundTrip checks, on random finite values of every
// magnitude, that FormatFloat reads back exactly and always looks like a
// float ("12.0", never "12").
func TestFormatFloatRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(2345, 600))
	check := func(x float64) {
		s := wire.FormatFloat(x)
		back, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(back) != math.Float64bits(x) {
			t.Fatalf("FormatFloat(%b) = %q reads back as %b, %v", x, s, back, err)
		}
		if !strings.ContainsAny(s, ".e") {
			t.Fatalf("FormatFloat(%v) = %q has neither '.' nor 'e'", x, s)
		}
	}
	for range 200_000 {
		// Random bit patterns cover every exponent; the others cover
		// typical durations in ms and whole numbers.
		if x := math.Float64frombits(rng.Uint64()); !math.IsNaN(x) && !math.IsInf(x, 0) {
			check(x)
		}
		check(rng.Float64() * 10_000)
		check(float64(rng.Int64N(1 << 62)))
		check(-rng.ExpFloat64())
	}
}
