package auth_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/auth"
)

func newSigner(t *testing.T, adminToken string) *auth.TokenSigner {
	t.Helper()
	s, err := auth.NewTokenSigner(auth.DeriveTokenKey(adminToken))
	require.NoError(t, err)
	return s
}

func TestTokenMintVerify(t *testing.T) {
	t.Parallel()
	s := newSigner(t, "ha_admin")
	now := time.Date(2026, 11, 28, 3, 25, 12, 500_000_000, time.UTC)
	tok, bt, err := s.Mint("app1", []string{"b", "a", "b"}, 15*time.Minute, now)
	require.NoError(t, err)
	require.True(t, auth.LooksLikeToken(tok), tok)
	require.Equal(t, []string{"a", "b"}, bt.Topics, "sorted, without duplicates")
	require.Equal(t, time.Date(2026, 11, 28, 3, 40, 12, 0, time.UTC), bt.ExpiresAt, "whole seconds, as the exp claim")
	require.NotEmpty(t, bt.ID)

	got, err := s.Verify(tok, now.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, "app1", got.App)
	require.Equal(t, []string{"a", "b"}, got.Topics)
	require.True(t, got.ExpiresAt.Equal(bt.ExpiresAt))
	require.Equal(t, bt.ID, got.ID)
	require.True(t, got.Allows("a"))
	require.False(t, got.Allows("c"))

	// Valid up to the instant before exp, expired from exp on, and the
	// error says when.
	_, err = s.Verify(tok, bt.ExpiresAt.Add(-time.Nanosecond))
	require.NoError(t, err)
	_, err = s.Verify(tok, bt.ExpiresAt)
	require.ErrorIs(t, err, auth.ErrTokenExpired)
	var exp *auth.TokenExpiredError
	require.ErrorAs(t, err, &exp)
	require.True(t, exp.ExpiredAt.Equal(bt.ExpiresAt))
	require.Contains(t, err.Error(), "2026-11-28T03:40:12Z")

	// Tokens minted by two signers with the same admin token are
	// interchangeable: cluster nodes need no shared state.
	_, err = newSigner(t, "ha_admin").Verify(tok, now)
	require.NoError(t, err)
}

func TestTokenSubSecondTTLIsNotBornExpired(t *testing.T) {
	t.Parallel()
	s := newSigner(t, "ha_admin")
	now := time.Date(2026, 1, 1, 0, 0, 0, 900_000_000, time.UTC)
	tok, bt, err := s.Mint("app1", []string{"a"}, 50*time.Millisecond, now)
	require.NoError(t, err)
	require.True(t, bt.ExpiresAt.After(now))
	_, err = s.Verify(tok, now)
	require.NoError(t, err)
}

func TestTokenRejections(t *testing.T) {
	t.Parallel()
	s := newSigner(t, "ha_admin")
	now := time.Now()
	tok, _, err := s.Mint("app1", []string{"a"}, time.Minute, now)
	require.NoError(t, err)
	parts := strings.Split(tok, ".")

	// A token with different claims, signed with the same key but not by Herald.
	foreign, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"app": "app1", "topics": []string{"a"}, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
	}).SignedString(auth.DeriveTokenKey("ha_admin"))
	require.NoError(t, err)
	// The same claims signed with HS512 and the same key: only HS256 is taken.
	var claims jwt.MapClaims
	_, _, err = jwt.NewParser().ParseUnverified(tok, &claims)
	require.NoError(t, err)
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString(auth.DeriveTokenKey("ha_admin"))
	require.NoError(t, err)
	// alg none.
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	// The payload swapped for one naming another topic, signature kept.
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(
		mustDecode(t, parts[1]), `"topics":["a"]`, `"topics":["secret"]`, 1))) + "." + parts[2]
	require.NotEqual(t, tok, forged)

	otherKey := newSigner(t, "ha_rotated")
	for name, tc := range map[string]struct {
		signer *auth.TokenSigner
		token  string
		want   string
	}{
		"empty":               {s, "", "malformed"},
		"garbage":             {s, "not-a-token", "malformed"},
		"two parts":           {s, parts[0] + "." + parts[1], "malformed"},
		"bad base64":          {s, parts[0] + ".!!!." + parts[2], "malformed"},
		"altered signature":   {s, parts[0] + "." + parts[1] + "." + flipFirst(parts[2]), "bad signature"},
		"forged claims":       {s, forged, "bad signature"},
		"rotated admin token": {otherKey, tok, "bad signature"},
		"HS512":               {s, hs512, "bad signature"},
		"alg none":            {s, none, "bad signature"},
		"foreign claims":      {s, foreign, "not a Herald browser token"},
	} {
		_, err := tc.signer.Verify(tc.token, now)
		require.ErrorIs(t, err, auth.ErrTokenInvalid, name)
		require.NotErrorIs(t, err, auth.ErrTokenExpired, name)
		require.ErrorContains(t, err, tc.want, name)
	}
}

func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

func mustDecode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	require.NoError(t, err)
	return string(b)
}

func TestTokenKeys(t *testing.T) {
	t.Parallel()
	require.Equal(t, auth.DeriveTokenKey("a"), auth.DeriveTokenKey("a"), "derivation is deterministic")
	require.NotEqual(t, auth.DeriveTokenKey("a"), auth.DeriveTokenKey("b"))
	require.Len(t, auth.DeriveTokenKey("a"), 32)
	_, err := auth.NewTokenSigner([]byte("short"))
	require.ErrorContains(t, err, "at least 32")
	_, _, err = newSigner(t, "x").Mint("app", []string{"a"}, 0, time.Now())
	require.Error(t, err)
	require.False(t, auth.LooksLikeToken("hk_abc_def"))
	require.False(t, auth.LooksLikeToken("ha_0123"))
}
