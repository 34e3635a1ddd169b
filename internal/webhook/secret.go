package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret, as Standard Webhooks writes them.
const SecretPrefix = "whsec_"

// Secret sizes, in bytes of key after base64 decoding: Standard Webhooks
// asks for 24 to 64. Generated secrets have 24 bytes, as Svix's do.
const (
	MinSecretBytes      = 24
	MaxSecretBytes      = 64
	generatedSecretSize = 24
)

// The Standard Webhooks headers every delivery carries.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// NewSecret returns a fresh signing secret: "whsec_" and the standard
// base64 of 24 random bytes.
func NewSecret() string {
	var key [generatedSecretSize]byte
	_, _ = rand.Read(key[:]) // crypto/rand.Read never fails (it panics first)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key[:])
}

// ParseSecret checks a signing secret ("whsec_" + standard base64 of 24 to
// 64 bytes) and returns its key. The error wraps ErrInvalidSecret.
func ParseSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: a secret starts with %q", ErrInvalidSecret, SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: after %q comes standard base64 (with padding)", ErrInvalidSecret, SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: the key is %d bytes; it must be %d to %d", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// Sign returns the webhook-signature header of a delivery: "v1," and the
// standard base64 of HMAC-SHA256(key, id + "." + unix seconds + "." + body),
// where key is the secret's decoded key. The secret must be valid
// (ParseSecret).
func Sign(secret, id string, at time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	return sign(key, id, at.Unix(), body), nil
}

func sign(key []byte, id string, unix int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, unix, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
