// Package allowlist parses lists of client addresses allowed to read the
// collector's statistics over HTTP, and checks client addresses against
// them.
//
// The text format is the one of GSTATS_ALLOWED_IPS, as the Python status
// application (gstats.wsgi) reads it:
//
//   - entries are separated by commas or white space;
//   - an entry is an IPv4 or IPv6 address (a single host) or network in
//     CIDR notation: 127.0.0.1, ::1, [::1], 10.0.0.0/8, fd00::/8. Host bits
//     under the mask are ignored (10.1.2.3/8 is 10.0.0.0/8); an IPv4 mask
//     may also be written as a netmask (10.0.0.0/255.0.0.0) or a hostmask
//     (10.0.0.0/0.255.255.255); an IPv6 zone (fe80::1%eth0) is ignored;
//   - an entry that is none of these but holds both '.' and ':' is the
//     original gstats format, IPv4 addresses or networks separated by ':'
//     (127.0.0.1:10.0.0.0/8); empty parts are skipped.
//
// Client addresses given as IPv4-mapped IPv6 (::ffff:127.0.0.1) are
// checked as the IPv4 address they map; so are entries written that way
// (::ffff:10.0.0.0/104 is 10.0.0.0/8), as the Python application does.
package allowlist

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// List is a parsed allowlist. The zero value allows nobody.
type List struct {
	prefixes []netip.Prefix
}

// EntryError reports an entry that is not an address or network.
type EntryError struct {
	// Entry is the offending text; Whole is the ':'-separated entry it was
	// part of, or "" if Entry stood on its own.
	Entry, Whole string
}

// Error explains the entry and the accepted format.
func (e *EntryError) Error() string {
	in := ""
	if e.Whole != "" && e.Whole != e.Entry {
		in = fmt.Sprintf(" (in %q)", e.Whole)
	}
	return fmt.Sprintf("%q%s is not an IP address or network; list addresses or CIDR networks "+
		"separated by commas, e.g. 127.0.0.1,::1,10.0.0.0/8 (':' still separates IPv4 addresses, "+
		"as in the original gstats)", e.Entry, in)
}

// Parse parses one string in the GSTATS_ALLOWED_IPS format. An empty or
// blank string gives an empty list, which allows nobody.
func Parse(text string) (*List, error) {
	return ParseEntries([]string{text})
}

// ParseEntries parses a list of strings, each in the format Parse takes
// (so a configuration list may hold "127.0.0.1, ::1" as one item). The
// error, an *EntryError, names the first bad entry.
func ParseEntries(items []string) (*List, error) {
	l := &List{}
	for _, item := range items {
		for _, entry := range strings.FieldsFunc(item, isSeparator) {
			ps, err := parseEntry(entry)
			if err != nil {
				return nil, err
			}
			l.prefixes = append(l.prefixes, ps...)
		}
	}
	return l, nil
}

// isSeparator is true for a comma and for what Python's \s matches.
func isSeparator(r rune) bool {
	return r == ',' || unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

func parseEntry(entry string) ([]netip.Prefix, error) {
	if p, ok := parseNetwork(entry); ok {
		return []netip.Prefix{p}, nil
	}
	if strings.Contains(entry, ":") && strings.Contains(entry, ".") {
		var out []netip.Prefix
		for part := range strings.SplitSeq(entry, ":") {
			if part == "" {
				continue
			}
			p, ok := parseNetwork(part)
			if !ok || !p.Addr().Is4() {
				return nil, &EntryError{Entry: part, Whole: entry}
			}
			out = append(out, p)
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, &EntryError{Entry: entry}
}

// parseNetwork parses an address or network: 1.2.3.4, ::1, [::1],
// [::1]/128, 10.0.0.0/8, 10.0.0.0/255.0.0.0, fe80::1%eth0/64.
func parseNetwork(text string) (netip.Prefix, bool) {
	if strings.HasPrefix(text, "[") {
		end := strings.IndexByte(text, ']')
		if end < 0 {
			return netip.Prefix{}, false
		}
		text = text[1:end] + text[end+1:]
	}
	addrText, bitsText, hasBits := strings.Cut(text, "/")
	addr, err := netip.ParseAddr(addrText)
	if err != nil {
		return netip.Prefix{}, false
	}
	addr = addr.WithZone("")
	bits := addr.BitLen()
	if hasBits {
		if bits, err = maskBits(addr, bitsText); err != nil {
			return netip.Prefix{}, false
		}
	}
	if addr.Is4In6() && bits >= 96 {
		addr, bits = addr.Unmap(), bits-96
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}

// maskBits reads the part after '/': a prefix length, or for IPv4 a netmask
// or hostmask in dotted-quad form.
func maskBits(addr netip.Addr, text string) (int, error) {
	if text != "" && strings.Trim(text, "0123456789") == "" {
		digits := strings.TrimLeft(text, "0")
		if len(digits) > 3 {
			return 0, fmt.Errorf("prefix length %q out of range", text)
		}
		n, _ := strconv.Atoi("0" + digits)
		if n > addr.BitLen() {
			return 0, fmt.Errorf("prefix length %d out of range", n)
		}
		return n, nil
	}
	if !addr.Is4() {
		return 0, fmt.Errorf("bad IPv6 prefix length %q", text)
	}
	mask, err := netip.ParseAddr(text)
	if err != nil || !mask.Is4() {
		return 0, fmt.Errorf("bad IPv4 mask %q", text)
	}
	b := mask.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if n, ok := leadingOnes(m); ok {
		return n, nil // netmask, 255.255.0.0
	}
	if n, ok := leadingOnes(^m); ok {
		return n, nil // hostmask, 0.0.255.255
	}
	return 0, fmt.Errorf("IPv4 mask %q is neither a netmask nor a hostmask", text)
}

// leadingOnes reports n if m is n one bits followed by zero bits.
func leadingOnes(m uint32) (int, bool) {
	n := 0
	for n < 32 && m&(1<<(31-n)) != 0 {
		n++
	}
	return n, n == 32 || m<<n == 0
}

// Len is the number of networks in the list.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.prefixes)
}

// Prefixes returns a copy of the networks in the list, in their order.
func (l *List) Prefixes() []netip.Prefix {
	if l == nil {
		return nil
	}
	return append([]netip.Prefix(nil), l.prefixes...)
}

// String lists the networks, comma-separated, in the format Parse reads;
// a single host is written without its prefix length.
func (l *List) String() string {
	if l.Len() == 0 {
		return ""
	}
	parts := make([]string, len(l.prefixes))
	for i, p := range l.prefixes {
		if p.IsSingleIP() {
			parts[i] = p.Addr().String()
		} else {
			parts[i] = p.String()
		}
	}
	return strings.Join(parts, ",")
}

// Allows reports whether addr is in one of the networks. An IPv4-mapped
// IPv6 address is checked as its IPv4 address; a zone is ignored.
func (l *List) Allows(addr netip.Addr) bool {
	if l == nil || !addr.IsValid() {
		return false
	}
	addr = addr.WithZone("").Unmap()
	for _, p := range l.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// AllowsRemote is Allows for a client address as net/http gives it
// (Request.RemoteAddr: "1.2.3.4:5678", "[::1%lo]:5678") or a bare address
// ("::1", "[::1]"). Anything else is refused.
func (l *List) AllowsRemote(remote string) bool {
	text := strings.TrimSpace(remote)
	if ap, err := netip.ParseAddrPort(text); err == nil {
		return l.Allows(ap.Addr())
	}
	if strings.HasPrefix(text, "[") && strings.HasSuffix(text, "]") {
		text = text[1 : len(text)-1]
	}
	addr, err := netip.ParseAddr(text)
	if err != nil {
		return false
	}
	return l.Allows(addr)
}
