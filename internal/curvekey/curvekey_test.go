package curvekey

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	zmq "github.com/pebbe/zmq4"
)

// A key pair made by libzmq, and a key with '=' in it.
const (
	testPublic = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
	testSecret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
	keyWithEq  = "h4>uDv?#.v{/^Ai9Ipe<!=ubsMy#&cEp8x/()#3o"
)

func generate(t testing.TB) Pair {
	t.Helper()
	p, err := Generate()
	if err != nil {
		t.Fatalf("%v (install a libzmq with CURVE: apt-get install libzmq5)", err)
	}
	return p
}

func TestDecodeAndEncodeAgreeWithLibzmq(t *testing.T) {
	for range 200 {
		p := generate(t)
		for _, k := range []string{p.Public, p.Secret} {
			raw, err := Decode(k)
			if err != nil {
				t.Fatalf("Decode(%q): %v", k, err)
			}
			if want := zmq.Z85decode(k); string(raw) != want {
				t.Fatalf("Decode(%q) = %x, libzmq %x", k, raw, want)
			}
			back, err := Encode(raw)
			if err != nil || back != k {
				t.Fatalf("Encode(Decode(%q)) = %q, %v", k, back, err)
			}
			if z := zmq.Z85encode(string(raw)); back != z {
				t.Fatalf("Encode = %q, libzmq %q", back, z)
			}
		}
	}
	if pub, err := zmq.AuthCurvePublic(testSecret); err != nil || pub != testPublic {
		t.Fatalf("the test pair does not match: %q, %v", pub, err)
	}
}

// TestKeysAgreeWithLibzmq checks that the pure-Go keys are the ones libzmq
// makes and derives: a pair from Generate, and one from libzmq.
func TestKeysAgreeWithLibzmq(t *testing.T) {
	if !zmq.HasCurve() {
		t.Fatal("this libzmq has no CURVE support (install Debian's libzmq5, built with libsodium)")
	}
	for range 100 {
		p := generate(t)
		if pub, err := zmq.AuthCurvePublic(p.Secret); err != nil || pub != p.Public {
			t.Fatalf("Generate made %+v; libzmq derives public key %q (%v)", p, pub, err)
		}
		zpub, zsec, err := zmq.NewCurveKeypair()
		if err != nil {
			t.Fatal(err)
		}
		if pub, err := PublicOf(zsec); err != nil || pub != zpub {
			t.Fatalf("PublicOf(%q) = %q, %v; libzmq made %q", zsec, pub, err, zpub)
		}
	}
	if _, err := PublicOf("not a key"); err == nil {
		t.Error("PublicOf accepted a malformed key")
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]string{
		"":                       "40 characters of Z85, got 0",
		testPublic[:39]:          "got 39",
		testPublic + "x":         "got 41",
		testPublic[:39] + " ":    `character 40 of the key, ' ', is not in the Z85 alphabet`,
		"\"" + testPublic[1:]:    `character 1 of the key, '"', is not`,
		"%%%%%" + testPublic[5:]: "characters 1 to 5 of the key are not valid Z85", // 84*85^4+... > 2^32-1
	}
	for in, want := range cases {
		if _, err := Decode(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%q) = %v, want an error containing %q", in, err, want)
		}
	}
	if _, err := Encode(make([]byte, 31)); err == nil {
		t.Error("Encode of 31 bytes succeeded")
	}
}

func TestParse(t *testing.T) {
	czmqSecret := "#   ****  Generated on 2024-05-01 10:00:00 by CZMQ  ****\n" +
		"#   ZeroMQ CURVE **Secret** Certificate\n" +
		"#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\n" +
		"metadata\n    name = \"web-1\"\n" +
		"curve\n    public-key = \"" + testPublic + "\"\n    secret-key = \"" + testSecret + "\"\n"
	cases := []struct {
		name string
		in   string
		want Pair
		err  string
	}{
		{name: "czmq secret certificate", in: czmqSecret, want: Pair{testPublic, testSecret}},
		{name: "czmq public certificate", in: "metadata\ncurve\n    public-key = \"" + testPublic + "\"\n", want: Pair{Public: testPublic}},
		{name: "CRLF", in: strings.ReplaceAll(czmqSecret, "\n", "\r\n"), want: Pair{testPublic, testSecret}},
		{name: "bare key", in: testPublic + "\n", want: Pair{Public: testPublic}},
		{name: "bare key with = in it", in: keyWithEq, want: Pair{Public: keyWithEq}},
		{name: "bare key after comments", in: "# the collector\n\n  " + keyWithEq + "  \n", want: Pair{Public: keyWithEq}},
		{name: "single quotes", in: "curve\n    public-key = '" + testPublic + "'\n", want: Pair{Public: testPublic}},
		{name: "unquoted", in: "curve\n    public-key = " + keyWithEq + "\n", want: Pair{Public: keyWithEq}},
		{name: "trailing comment", in: "curve\n    public-key = \"" + testPublic + "\"   # web-1\n", want: Pair{Public: testPublic}},
		{name: "metadata with quotes", in: "metadata\n    name = \"a \\\"b\\\"\"\ncurve\n    public-key = \"" + testPublic + "\"\n", want: Pair{Public: testPublic}},
		{name: "empty", in: "", err: "no key found"},
		{name: "comments only", in: "# nothing\n\n", err: "no key found"},
		{name: "secret without public", in: "curve\n    secret-key = \"" + testSecret + "\"\n", err: "a secret-key without its public-key"},
		{name: "twice", in: "curve\n    public-key = \"" + testPublic + "\"\n    public-key = \"" + testPublic + "\"\n", err: "line 3: public-key is given twice"},
		{name: "bad key", in: "curve\n    public-key = \"" + testPublic[:30] + "\"\n", err: "line 2: public-key: a CURVE key is 40 characters of Z85, got 30"},
		{name: "unclosed quote", in: "curve\n    public-key = \"" + testPublic + "\n", err: "line 2: public-key: " + `"\"rq:rM`},
		{name: "text after quote", in: "curve\n    public-key = \"" + testPublic + "\" x\n", err: "unexpected text after the quoted value"},
		{name: "bare and lines", in: keyWithEq + "\ncurve\n    public-key = \"" + testPublic + "\"\n", err: "a bare key and public-key/secret-key lines in one file"},
		{name: "two bare keys", in: testPublic + "\n" + keyWithEq + "\n", err: "line 2: a second bare key"},
		{name: "indented section", in: "  curve\n", err: "line 1: \"curve\": want name = \"value\""},
		{name: "garbage", in: "hello world\n", err: "line 1"},
		{name: "binary", in: "\x00\xff\xfe", err: "line 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse() = %+v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse() = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestFormatParsesBack(t *testing.T) {
	p := generate(t)
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, name := range []string{"web-1", `we"ird name`, "é"} {
		got, err := Parse(Format(p, true, name, now))
		if err != nil || got != p {
			t.Errorf("%q: secret file parses as %+v, %v", name, got, err)
		}
		got, err = Parse(Format(p, false, name, now))
		if err != nil || got != (Pair{Public: p.Public}) {
			t.Errorf("%q: public file parses as %+v, %v", name, got, err)
		}
	}
	if text := string(Format(p, false, "x", now)); strings.Contains(text, p.Secret) {
		t.Error("the public file holds the secret key")
	}
}

func TestWriteAndLoad(t *testing.T) {
	dir := t.TempDir()
	p := generate(t)
	pub, sec, err := Write(filepath.Join(dir, "web1"), p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if pub != filepath.Join(dir, "web1.key") || sec != filepath.Join(dir, "web1.key_secret") {
		t.Errorf("paths %s, %s", pub, sec)
	}
	for path, mode := range map[string]os.FileMode{pub: 0o644, sec: 0o600} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %04o", path, st.Mode().Perm(), err, mode)
		}
	}
	if got, err := LoadSecret(sec); err != nil || got != p {
		t.Errorf("LoadSecret = %+v, %v", got, err)
	}
	for _, spec := range []string{pub, sec, p.Public} {
		if got, err := LoadPublic(spec); err != nil || got != p.Public {
			t.Errorf("LoadPublic(%q) = %q, %v", spec, got, err)
		}
	}

	// Never overwrites; leaves no secret without its public half.
	if _, _, err := Write(filepath.Join(dir, "web1"), generate(t), time.Now()); err == nil || !strings.Contains(err.Error(), "already exists; keygen never overwrites") {
		t.Errorf("Write over existing files: %v", err)
	}
	if got, err := LoadSecret(sec); err != nil || got != p {
		t.Errorf("after a refused Write, LoadSecret = %+v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web2.key"), []byte("taken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Write(filepath.Join(dir, "web2"), generate(t), time.Now()); err == nil {
		t.Error("Write over an existing public file succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "web2.key_secret")); !os.IsNotExist(err) {
		t.Errorf("a refused Write left web2.key_secret behind: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	p := generate(t)
	pub, sec, err := Write(filepath.Join(dir, "k"), p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := os.ReadFile(sec)
	write := func(name string, data []byte, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	other := generate(t)
	cases := []struct {
		name string
		load func() error
		want string
	}{
		{"secret mode 0644", func() error { _, err := LoadSecret(write("open", secret, 0o644)); return err }, "has mode 0644: other users can read it; run chmod 600"},
		{"secret mode 0604", func() error { _, err := LoadSecret(write("other", secret, 0o604)); return err }, "has mode 0604"},
		{"public as secret", func() error { _, err := LoadSecret(pub); return err }, "holds no secret-key: give the .key_secret file, not the .key one"},
		{"missing secret", func() error { _, err := LoadSecret(filepath.Join(dir, "none")); return err }, "no such file"},
		{"halves differ", func() error {
			_, err := LoadSecret(write("mixed", bytes.Replace(secret, []byte(p.Public), []byte(other.Public), 1), 0o600))
			return err
		}, "its public-key is not the one of its secret-key"},
		{"bad file", func() error {
			_, err := LoadSecret(write("bad", []byte("curve\n  public-key = \"x\"\n"), 0o600))
			return err
		}, "line 2: public-key"},
		{"public: neither", func() error { _, err := LoadPublic("web-1.pub"); return err }, `"web-1.pub" is neither a 40-character Z85 key nor a key file`},
		{"public: bad Z85", func() error { _, err := LoadPublic(strings.Repeat(" ", 40)); return err }, "is neither"},
		{"public: directory", func() error { _, err := LoadPublic(dir); return err }, "is a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.load()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParse checks that no key file crashes Parse, that what it accepts
// holds valid keys, and that Format writes it back unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(testPublic))
	f.Add([]byte(keyWithEq + "\n"))
	f.Add([]byte("metadata\n    name = \"x\"\ncurve\n    public-key = \"" + testPublic + "\"\n    secret-key = \"" + testSecret + "\"\n"))
	f.Add([]byte("curve\n    public-key = '" + testPublic + "' # c\n"))
	f.Add([]byte("curve\n    secret-key = \"" + testSecret + "\"\n"))
	f.Add([]byte("# comment\r\n\r\n"))
	f.Add([]byte("curve\n    public-key = \"" + testPublic))
	now := time.Unix(0, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		if _, err := Decode(p.Public); err != nil {
			t.Fatalf("accepted public key %q: %v", p.Public, err)
		}
		if p.Secret != "" {
			if _, err := Decode(p.Secret); err != nil {
				t.Fatalf("accepted secret key %q: %v", p.Secret, err)
			}
		}
		back, err := Parse(Format(p, p.Secret != "", "fuzz", now))
		if err != nil || back != p {
			t.Fatalf("Format(%+v) parses as %+v, %v", p, back, err)
		}
	})
}
