package auth_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/auth"
)

// FuzzVerifyToken feeds arbitrary credentials to the browser-token
// verifier, seeded with a genuine token and pieces of it. It never panics
// and refuses with ErrTokenInvalid or a *TokenExpiredError; anything it
// accepts has the shape the API routes to it (LooksLikeToken: otherwise a
// valid token would be tried as an app key) and grants a named app sorted
// topics.
func FuzzVerifyToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	signer, err := auth.NewTokenSigner([]byte(strings.Repeat("k", 32)))
	require.NoError(f, err)
	good, _, err := signer.Mint("app_1", []string{"b", "a"}, time.Hour, now)
	require.NoError(f, err)
	head, rest, _ := strings.Cut(good, ".")
	claims, sig, _ := strings.Cut(rest, ".")
	for _, seed := range []string{
		good, good + "x", head + "." + claims + ".", head + ".." + sig, "eyJ.eyJ.x", "", "hk_abc_def",
		"eyJhbGciOiJub25lIn0." + claims + ".", strings.ToUpper(good), good[:len(good)/2],
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		bt, err := signer.Verify(token, now)
		if err != nil {
			var expired *auth.TokenExpiredError
			require.True(t, errors.Is(err, auth.ErrTokenInvalid) || errors.As(err, &expired), "%v", err)
			return
		}
		require.True(t, auth.LooksLikeToken(token), "a token that verifies must look like one: %q", token)
		require.NotEmpty(t, bt.App)
		require.NotEmpty(t, bt.Topics)
		require.True(t, slices.IsSorted(bt.Topics))
		require.True(t, bt.ExpiresAt.After(now))
	})
}
