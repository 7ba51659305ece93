// Package curvekey reads, writes and makes the ZeroMQ CURVE keys gstats
// uses on its stats and control sockets.
//
// A key is 32 bytes, written as 40 characters of Z85. Key files are in the
// format of ZeroMQ's certificate files (czmq's zcert), so keys made by
// other ZeroMQ tools load too:
//
//	# comment
//	metadata
//	    made-by = "gstatsctl keygen"
//	curve
//	    public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//	    secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
//
// A public key file has no secret-key line; a file holding only a bare
// 40-character key is read as a public key. gstatsctl keygen writes NAME.key
// (public, mode 0644) and NAME.key_secret (both halves, mode 0600).
package curvekey

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
)

// Len is the length of a key in Z85.
const Len = 40

// Suffixes of the two files Write makes.
const (
	PublicSuffix = ".key"
	SecretSuffix = ".key_secret"
)

// Pair is a key pair in Z85. Secret is "" for a public key alone.
type Pair struct {
	Public string
	Secret string
}

const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// Decode returns the 32 bytes of a Z85 key, or an error saying what is
// wrong with it.
func Decode(z85 string) ([]byte, error) {
	if len(z85) != Len {
		return nil, fmt.Errorf("a CURVE key is %d characters of Z85, got %d", Len, len(z85))
	}
	out := make([]byte, 0, 32)
	for i := 0; i < Len; i += 5 {
		var v uint64
		for j := i; j < i+5; j++ {
			d := strings.IndexByte(z85Alphabet, z85[j])
			if d < 0 {
				return nil, fmt.Errorf("character %d of the key, %q, is not in the Z85 alphabet", j+1, z85[j])
			}
			v = v*85 + uint64(d)
		}
		if v > 0xffffffff {
			return nil, fmt.Errorf("characters %d to %d of the key are not valid Z85", i+1, i+5)
		}
		out = append(out, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return out, nil
}

// Encode returns the Z85 text of a 32-byte key.
func Encode(key []byte) (string, error) {
	if len(key) != 32 {
		return "", fmt.Errorf("a CURVE key is 32 bytes, got %d", len(key))
	}
	out := make([]byte, 0, Len)
	for i := 0; i < len(key); i += 4 {
		v := uint32(key[i])<<24 | uint32(key[i+1])<<16 | uint32(key[i+2])<<8 | uint32(key[i+3])
		var chunk [5]byte
		for j := 4; j >= 0; j-- {
			chunk[j] = z85Alphabet[v%85]
			v /= 85
		}
		out = append(out, chunk[:]...)
	}
	return string(out), nil
}

// Parse reads a key file's content. Errors name the line.
func Parse(data []byte) (Pair, error) {
	var p Pair
	lines := strings.Split(string(data), "\n")
	bare := ""
	for i, line := range lines {
		n := i + 1
		line = strings.TrimRight(line, "\r")
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue // no key starts with '#': it would be over 2^32
		}
		// A bare key before name=value: the Z85 alphabet has '='.
		if len(t) == Len {
			if _, err := Decode(t); err == nil {
				if bare != "" {
					return Pair{}, fmt.Errorf("line %d: a second bare key; a key file holds one key", n)
				}
				bare = t
				continue
			}
		}
		name, value, ok := strings.Cut(t, "=")
		if !ok {
			if line == t && validSection(t) {
				continue // a section name: metadata, curve
			}
			return Pair{}, fmt.Errorf("line %d: %s: want name = \"value\", a section name, or a bare %d-character key", n, quote(t), Len)
		}
		name = strings.TrimSpace(name)
		var dst *string
		switch name {
		case "public-key":
			dst = &p.Public
		case "secret-key":
			dst = &p.Secret
		default:
			continue // metadata
		}
		if *dst != "" {
			return Pair{}, fmt.Errorf("line %d: %s is given twice", n, name)
		}
		value, err := unquote(strings.TrimSpace(value))
		if err != nil {
			return Pair{}, fmt.Errorf("line %d: %s: %w", n, name, err)
		}
		if _, err := Decode(value); err != nil {
			return Pair{}, fmt.Errorf("line %d: %s: %w", n, name, err)
		}
		*dst = value
	}
	if bare != "" {
		if p != (Pair{}) {
			return Pair{}, errors.New("a bare key and public-key/secret-key lines in one file")
		}
		p.Public = bare
	}
	if p.Public == "" {
		if p.Secret != "" {
			return Pair{}, errors.New("a secret-key without its public-key")
		}
		return Pair{}, errors.New("no key found: want a public-key = \"...\" line or a bare key")
	}
	return p, nil
}

// unquote returns a value as zconfig writes it: in double or single quotes,
// optionally followed by a # comment, or bare (Z85 has '#', so a bare
// value is taken whole).
func unquote(v string) (string, error) {
	if v == "" || (v[0] != '"' && v[0] != '\'') {
		return v, nil
	}
	end := strings.IndexByte(v[1:], v[0])
	if end < 0 {
		return "", fmt.Errorf("%s: the quote is not closed", quote(v))
	}
	if rest := strings.TrimSpace(v[end+2:]); rest != "" && !strings.HasPrefix(rest, "#") {
		return "", fmt.Errorf("%s: unexpected text after the quoted value", quote(v))
	}
	return v[1 : end+1], nil
}

func validSection(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func quote(s string) string {
	if len(s) > 48 {
		s = s[:48] + "…"
	}
	return strconv.Quote(s)
}

// Load reads a key file.
func Load(path string) (Pair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Pair{}, fmt.Errorf("reading CURVE key file: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return Pair{}, fmt.Errorf("CURVE key file %s: %w", path, err)
	}
	return p, nil
}

// LoadSecret reads a key file that must hold a secret key, readable by its
// owner only, whose public key matches it.
func LoadSecret(path string) (Pair, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Pair{}, fmt.Errorf("CURVE secret key file: %w", err)
	}
	p, err := Load(path)
	if err != nil {
		return Pair{}, err
	}
	// Before the mode: a public key file given by mistake is readable by
	// all, and chmod would not help.
	if p.Secret == "" {
		return Pair{}, fmt.Errorf("CURVE key file %s holds no secret-key: give the %s file, not the %s one", path, SecretSuffix, PublicSuffix)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Pair{}, fmt.Errorf("CURVE secret key file %s has mode %04o: other users can read it; run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	pub, err := PublicOf(p.Secret)
	if err != nil {
		return Pair{}, fmt.Errorf("CURVE key file %s: deriving the public key: %w", path, err)
	}
	if pub != p.Public {
		return Pair{}, fmt.Errorf("CURVE key file %s: its public-key is not the one of its secret-key", path)
	}
	return p, nil
}

// LoadPublic returns a public key given as itself (40 characters of Z85)
// or as the path of a key file (a secret key file gives its public half).
func LoadPublic(spec string) (string, error) {
	if len(spec) == Len {
		if _, err := Decode(spec); err == nil {
			if _, statErr := os.Stat(spec); statErr != nil {
				return spec, nil
			}
		}
	}
	p, err := Load(spec)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s is neither a %d-character Z85 key nor a key file", quote(spec), Len)
		}
		return "", err
	}
	return p.Public, nil
}

// Generate makes a new key pair. CURVE keys are X25519 keys, so the
// standard library makes them; libzmq is not needed.
func Generate() (Pair, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return Pair{}, fmt.Errorf("making a CURVE key pair: %w", err)
	}
	return pairOf(k)
}

// PublicOf returns the public key of a secret key (both Z85): its X25519
// public key, as libzmq derives it.
func PublicOf(secret string) (string, error) {
	raw, err := Decode(secret)
	if err != nil {
		return "", err
	}
	k, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return "", fmt.Errorf("not an X25519 secret key: %w", err)
	}
	p, err := pairOf(k)
	return p.Public, err
}

func pairOf(k *ecdh.PrivateKey) (Pair, error) {
	pub, err := Encode(k.PublicKey().Bytes())
	if err != nil {
		return Pair{}, err
	}
	sec, err := Encode(k.Bytes())
	if err != nil {
		return Pair{}, err
	}
	return Pair{Public: pub, Secret: sec}, nil
}

// Format returns the content of a key file for p: with the secret key when
// secret is true. name goes into its metadata.
func Format(p Pair, secret bool, name string, now time.Time) []byte {
	var b bytes.Buffer
	if secret {
		fmt.Fprintf(&b, "# gstats CURVE key pair %q. Keep this file secret: anyone who has it\n", name)
		fmt.Fprintf(&b, "# can speak as its owner. Its public key is in %s%s.\n", name, PublicSuffix)
	} else {
		fmt.Fprintf(&b, "# gstats CURVE public key %q; its secret key is in %s%s.\n", name, name, SecretSuffix)
	}
	b.WriteString("metadata\n")
	fmt.Fprintf(&b, "    name = %q\n", name)
	fmt.Fprintf(&b, "    created = %q\n", now.UTC().Format(time.RFC3339))
	b.WriteString("curve\n")
	fmt.Fprintf(&b, "    public-key = %q\n", p.Public)
	if secret {
		fmt.Fprintf(&b, "    secret-key = %q\n", p.Secret)
	}
	return b.Bytes()
}

// Write writes base+PublicSuffix (mode 0644) and base+SecretSuffix (mode
// 0600) for p. It never overwrites a file.
func Write(base string, p Pair, now time.Time) (publicPath, secretPath string, err error) {
	name := base
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	publicPath, secretPath = base+PublicSuffix, base+SecretSuffix
	for _, f := range []struct {
		path   string
		mode   fs.FileMode
		secret bool
	}{{secretPath, 0o600, true}, {publicPath, 0o644, false}} {
		if err := writeNew(f.path, Format(p, f.secret, name, now), f.mode); err != nil {
			if !f.secret {
				// Leave no secret key without its public half.
				_ = os.Remove(secretPath)
			}
			return "", "", err
		}
	}
	return publicPath, secretPath, nil
}

func writeNew(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; keygen never overwrites a key (remove it or choose another name)", path)
		}
		return fmt.Errorf("writing key file: %w", err)
	}
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(path) // no half-written key file
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fail(fmt.Errorf("writing key file %s: %w", path, err))
	}
	if err := f.Chmod(mode); err != nil { // umask aside
		return fail(fmt.Errorf("setting the mode of %s: %w", path, err))
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return nil
}
