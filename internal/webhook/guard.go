package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// MaxURLLen is the longest trigger URL accepted.
const MaxURLLen = 2048

// RefusedError says that a webhook URL resolves to an address the guard
// refuses: one inside this host or its private networks, which a trigger
// could otherwise be used to reach (server-side request forgery).
type RefusedError struct {
	// Host is the URL's host as written.
	Host string
	// Addr is the refused address.
	Addr netip.Addr
	// Kind names the range it is in: "loopback", "private", "link-local",
	// "unspecified", "multicast", "shared (CGNAT)", "reserved".
	Kind string
}

func (e *RefusedError) Error() string {
	host := ""
	if e.Host != "" && e.Host != e.Addr.String() {
		host = e.Host + " resolves to "
	}
	return fmt.Sprintf("%s%s, a %s address: webhooks may not reach it unless --webhook-allow-nets names it", host, e.Addr, e.Kind)
}

// Guard decides which addresses webhooks may be sent to: public ones, and
// special-purpose ones (loopback, private, link-local…) only inside the
// networks it was made to allow. Make one with NewGuard; it is immutable and
// safe for concurrent use.
type Guard struct {
	allow   []netip.Prefix
	refused []refusedRange
	nat64   netip.Prefix
}

// refusedRange is a special-purpose network a webhook may not reach by
// default, with the name errors give it.
type refusedRange struct {
	prefix netip.Prefix
	kind   string
}

// NewGuard returns a guard that allows, besides public addresses, every
// address inside one of the allow networks (127.0.0.0/8 lets webhooks reach
// this host, as tests and local setups need).
func NewGuard(allow []netip.Prefix) *Guard {
	r := func(cidr, kind string) refusedRange { return refusedRange{netip.MustParsePrefix(cidr), kind} }
	return &Guard{
		allow: append([]netip.Prefix(nil), allow...),
		refused: []refusedRange{
			r("0.0.0.0/8", "unspecified"), // "this network"; 0.0.0.0 reaches this host
			r("127.0.0.0/8", "loopback"),
			r("10.0.0.0/8", "private"),
			r("172.16.0.0/12", "private"),
			r("192.168.0.0/16", "private"),
			r("100.64.0.0/10", "shared (CGNAT)"),
			r("169.254.0.0/16", "link-local"), // cloud metadata lives at 169.254.169.254
			r("224.0.0.0/4", "multicast"),
			r("240.0.0.0/4", "reserved"), // and the broadcast address
			r("::/128", "unspecified"),
			r("::1/128", "loopback"),
			r("fc00::/7", "private"),
			r("fe80::/10", "link-local"),
			r("ff00::/8", "multicast"),
		},
		// The well-known NAT64 prefix: its addresses carry an IPv4
		// address in their last 32 bits, which is what they reach.
		nat64: netip.MustParsePrefix("64:ff9b::/96"),
	}
}

// ParseNets reads a comma-separated list of CIDR networks ("127.0.0.0/8,
// 10.1.0.0/16"); a bare address is a network of that one address.
func ParseNets(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR network (10.0.0.0/8) nor an address", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR network (like 10.0.0.0/8 or fd00::/8)", f)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// CheckAddr returns a *RefusedError when webhooks may not be sent to a.
// host, if not empty, is named in the error.
func (g *Guard) CheckAddr(host string, a netip.Addr) error {
	a = a.Unmap().WithZone("")
	for _, p := range g.allow {
		if p.Contains(a) {
			return nil
		}
	}
	if g.nat64.Contains(a) {
		b := a.As16()
		if err := g.CheckAddr("", netip.AddrFrom4([4]byte(b[12:]))); err != nil {
			var re *RefusedError
			if errors.As(err, &re) {
				return &RefusedError{Host: host, Addr: a, Kind: re.Kind + " (through NAT64)"}
			}
			return err
		}
	}
	for _, r := range g.refused {
		if r.prefix.Contains(a) {
			return &RefusedError{Host: host, Addr: a, Kind: r.kind}
		}
	}
	return nil
}

// CheckURL checks a trigger URL as given at creation: an absolute http or
// https URL with a host, no longer than MaxURLLen, whose host resolves only
// to addresses the guard allows. It returns the URL normalised by net/url.
// A malformed URL gives an error wrapping ErrInvalidURL; a refused address a
// *RefusedError. Delivery checks the address again (DialControl), since
// what a name resolves to can change.
func (g *Guard) CheckURL(ctx context.Context, raw string) (string, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return "", err
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return u.String(), g.CheckAddr(host, a)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return "", resolveError(host, err)
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("%w: host %q has no address", ErrInvalidURL, host)
	}
	// Every address must pass: a name with one public and one private
	// address would otherwise reach the private one on some attempts.
	for _, a := range addrs {
		if err := g.CheckAddr(host, a); err != nil {
			return "", err
		}
	}
	return u.String(), nil
}

// ParseURL checks the form of a trigger URL (an absolute http or https URL
// with a host and no fragment, at most MaxURLLen bytes) without resolving
// it. Errors wrap ErrInvalidURL.
func ParseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: url is required", ErrInvalidURL)
	}
	if len(raw) > MaxURLLen {
		return nil, fmt.Errorf("%w: url is longer than %d bytes", ErrInvalidURL, MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not a URL", ErrInvalidURL, raw)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: %q: the scheme must be http or https", ErrInvalidURL, raw)
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return nil, fmt.Errorf("%w: %q has no host", ErrInvalidURL, raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("%w: %q: a webhook URL has no #fragment", ErrInvalidURL, raw)
	}
	return u, nil
}

// DialControl is a net.Dialer Control function that refuses connections to
// addresses the guard refuses. It runs after name resolution, on the very
// address being dialled, so a name that resolved to a public address at
// creation and to a private one now is still refused.
func (g *Guard) DialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook dial: unexpected address %q: %w", address, err)
	}
	return g.CheckAddr("", ap.Addr())
}

// resolveError says why host did not resolve, in words for the client.
// The resolver's own message names the server's DNS server (like "lookup
// x on 10.0.0.2:53"), an internal address a client has no use for; only
// the kind of failure is kept.
func resolveError(host string, err error) error {
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		return fmt.Errorf("%w: host %q does not resolve (no such host)", ErrInvalidURL, host)
	case errors.As(err, &de) && (de.IsTimeout || de.IsTemporary):
		return fmt.Errorf("%w: host %q could not be resolved just now (the lookup timed out or failed for a while); retry", ErrInvalidURL, host)
	default:
		return fmt.Errorf("%w: host %q could not be resolved", ErrInvalidURL, host)
	}
}
