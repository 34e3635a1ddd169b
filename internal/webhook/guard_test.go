package webhook_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/webhook"
)

func TestGuardRefusesSpecialPurposeAddresses(t *testing.T) {
	t.Parallel()
	g := webhook.NewGuard(nil)
	for url, kind := range map[string]string{
		"http://127.0.0.1/hook":              "loopback",
		"http://127.8.9.10:8080/hook":        "loopback",
		"http://[::1]/hook":                  "loopback",
		"http://[::ffff:127.0.0.1]/hook":     "loopback",
		"http://[64:ff9b::7f00:1]/hook":      "loopback (through NAT64)",
		"http://10.1.2.3/hook":               "private",
		"https://172.16.0.1/hook":            "private",
		"https://172.31.255.255/hook":        "private",
		"http://192.168.1.1/hook":            "private",
		"http://[fd12:3456::1]/hook":         "private",
		"http://169.254.169.254/latest/meta": "link-local",
		"http://[fe80::1]/hook":              "link-local",
		"http://100.64.0.1/hook":             "shared (CGNAT)",
		"http://100.127.255.254/hook":        "shared (CGNAT)",
		"http://0.0.0.0/hook":                "unspecified",
		"http://[::]/hook":                   "unspecified",
		"http://224.0.0.1/hook":              "multicast",
		"http://[ff02::1]/hook":              "multicast",
		"http://255.255.255.255/hook":        "reserved",
		"http://localhost:9/hook":            "loopback", // resolved: /etc/hosts
	} {
		_, err := g.CheckURL(t.Context(), url)
		var refused *webhook.RefusedError
		require.True(t, errors.As(err, &refused), "%s: %v", url, err)
		require.Equal(t, kind, refused.Kind, url)
		require.Contains(t, err.Error(), "--webhook-allow-nets", "the error says how to allow it")
	}
}

func TestGuardAdmitsPublicAddresses(t *testing.T) {
	t.Parallel()
	g := webhook.NewGuard(nil)
	for _, url := range []string{
		"https://93.184.215.14/hook", "http://8.8.8.8:8080/a?b=c", "http://172.32.0.1/", "http://100.128.0.1/",
		"http://[2606:4700::1111]/hook", "http://[64:ff9b::808:808]/hook",
	} {
		got, err := g.CheckURL(t.Context(), url)
		require.NoError(t, err, url)
		require.Equal(t, url, got)
	}
}

func TestGuardAllowsNamedNetworks(t *testing.T) {
	t.Parallel()
	nets, err := webhook.ParseNets(" 127.0.0.0/8, 10.1.0.0/16 ,::1")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("::1/128"),
	}, nets)
	g := webhook.NewGuard(nets)
	for _, url := range []string{"http://127.0.0.1:8080/hook", "http://[::1]/hook", "http://10.1.200.3/hook", "http://localhost/hook"} {
		_, err := g.CheckURL(t.Context(), url)
		require.NoError(t, err, url)
	}
	_, err = g.CheckURL(t.Context(), "http://10.2.0.1/hook")
	var refused *webhook.RefusedError
	require.ErrorAs(t, err, &refused, "outside the allowed network")

	for _, bad := range []string{"10.0.0.0/33", "ten", "10.0.0.0/8/8"} {
		_, err := webhook.ParseNets(bad)
		require.Error(t, err, bad)
	}
}

func TestGuardRefusesMalformedURLs(t *testing.T) {
	t.Parallel()
	g := webhook.NewGuard(nil)
	for _, url := range []string{
		"", "ftp://8.8.8.8/x", "8.8.8.8/hook", "/relative", "http://", "http:///path", "mailto:a@b.c",
		"http://8.8.8.8/hook#frag", "http://[::1", "https://" + strings.Repeat("a", 2100) + ".com/",
		"http://no-such-host.invalid/hook",
	} {
		_, err := g.CheckURL(t.Context(), url)
		require.ErrorIs(t, err, webhook.ErrInvalidURL, "%q", url)
	}
}

// TestUnresolvableHostSaysSoWithoutTheResolver: a host that does not
// resolve (.invalid never does) is an invalid URL whose message names the
// host and not the server's DNS server.
func TestUnresolvableHostSaysSoWithoutTheResolver(t *testing.T) {
	t.Parallel()
	g := webhook.NewGuard(nil)
	_, err := g.CheckURL(t.Context(), "https://no-such-host.invalid/hook")
	require.ErrorIs(t, err, webhook.ErrInvalidURL)
	require.Contains(t, err.Error(), `"no-such-host.invalid"`)
	require.NotContains(t, err.Error(), ":53")
	require.NotContains(t, err.Error(), " on ")
}
