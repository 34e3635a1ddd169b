package webhook_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/heraldhq/herald/internal/webhook"
)

// TestSignMatchesTheSpecVector checks Sign against the example the
// Standard Webhooks specification and Svix's documentation publish.
func TestSignMatchesTheSpecVector(t *testing.T) {
	t.Parallel()
	sig, err := webhook.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)
}

func TestSignVerifiesWithTheOfficialLibrary(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	body := []byte(`{"id":"7","topic":"orders","message":{"n":1},"published_at":"2026-11-28T03:25:12Z"}`)
	at := time.Now()
	sig, err := webhook.Sign(secret, "msg_1", at, body)
	require.NoError(t, err)
	h := http.Header{}
	h.Set(webhook.HeaderID, "msg_1")
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(webhook.HeaderSignature, sig)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(body, h))

	require.Error(t, wh.Verify(append(body, ' '), h), "another body fails")
	other, err := standardwebhooks.NewWebhook(webhook.NewSecret())
	require.NoError(t, err)
	require.Error(t, other.Verify(body, h), "another secret fails")
}

func TestNewSecretIsValidAndFresh(t *testing.T) {
	t.Parallel()
	a, b := webhook.NewSecret(), webhook.NewSecret()
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, "whsec_"))
	key, err := webhook.ParseSecret(a)
	require.NoError(t, err)
	require.Len(t, key, 24)
}

func TestParseSecretRefusesMalformedSecrets(t *testing.T) {
	t.Parallel()
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	for name, s := range map[string]string{
		"no prefix":    b64(32),
		"not base64":   "whsec_not*base64!",
		"url base64":   "whsec_" + strings.ReplaceAll(base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}), "=", ""),
		"too short":    "whsec_" + b64(23),
		"too long":     "whsec_" + b64(65),
		"empty":        "whsec_",
		"prefix only ": "whsec",
	} {
		_, err := webhook.ParseSecret(s)
		require.ErrorIs(t, err, webhook.ErrInvalidSecret, name)
	}
	for _, n := range []int{24, 32, 64} {
		_, err := webhook.ParseSecret("whsec_" + b64(n))
		require.NoError(t, err, "%d bytes", n)
	}
}
