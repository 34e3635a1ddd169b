package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Browser tokens are short-lived, topic-scoped subscribe credentials for
// pages: a backend holding a manage key mints one for the topics a user may
// follow and hands it to the page, which opens its EventSource with
// ?access_token=. They are JWTs signed with HS256, so any node holding the
// signing key verifies them without a store read or any shared state.

// ErrTokenInvalid means a browser token is malformed, or its signature does
// not verify with this server's key.
var ErrTokenInvalid = errors.New("invalid token")

// ErrTokenExpired means a browser token was valid but its expiry has passed.
// The error carrying it is a *TokenExpiredError, which says when.
var ErrTokenExpired = errors.New("token expired")

// TokenExpiredError reports when an otherwise valid token expired.
type TokenExpiredError struct {
	ExpiredAt time.Time
}

// Error says when the token expired.
func (e *TokenExpiredError) Error() string {
	return "token expired at " + e.ExpiredAt.UTC().Format(time.RFC3339)
}

// Unwrap makes errors.Is(err, ErrTokenExpired) hold.
func (e *TokenExpiredError) Unwrap() error { return ErrTokenExpired }

// MinTokenKeyBytes is the shortest signing key NewTokenSigner accepts: HS256
// keys shorter than the hash add nothing but guessability.
const MinTokenKeyBytes = 32

// Claim values that keep a browser token from being mistaken for any other
// JWT signed with the same key (a --token-secret shared with other systems).
const (
	tokenIssuer   = "herald"
	tokenAudience = "herald:subscribe"
)

// tokenKeyLabel is the message HMAC'd with the admin token to derive the
// signing key when none is configured. The version lets a future format
// change its key without a new secret.
const tokenKeyLabel = "herald browser token key v1"

// DeriveTokenKey derives the token signing key from the admin token:
// HMAC-SHA256(adminToken, "herald browser token key v1"). Every node of a
// cluster shares the admin token, so they share this key with no new state;
// rotating the admin token therefore invalidates every outstanding token.
func DeriveTokenKey(adminToken string) []byte {
	m := hmac.New(sha256.New, []byte(adminToken))
	m.Write([]byte(tokenKeyLabel))
	return m.Sum(nil)
}

// BrowserToken is what a verified token grants.
type BrowserToken struct {
	// ID is the token's unique id (the jti claim).
	ID string
	// App is the app whose topics the token may follow.
	App string
	// Topics are the only topics it may follow, sorted.
	Topics []string
	// KeyID is the id of the app key that minted the token (the kid
	// claim); empty when the admin token did. A token stops verifying
	// when that key is revoked (see Verifier.KeyValid).
	KeyID     string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Allows reports whether the token may follow topic.
func (t BrowserToken) Allows(topic string) bool {
	_, ok := slices.BinarySearch(t.Topics, topic)
	return ok
}

type tokenClaims struct {
	App    string   `json:"app"`
	Topics []string `json:"topics"`
	Key    string   `json:"kid,omitempty"`
	jwt.RegisteredClaims
}

// TokenSigner mints and verifies browser tokens with one HS256 key. It is
// safe for concurrent use. Times are passed in, so callers and tests decide
// the clock.
type TokenSigner struct {
	key []byte
}

// NewTokenSigner returns a signer for key, which must be at least
// MinTokenKeyBytes long.
func NewTokenSigner(key []byte) (*TokenSigner, error) {
	if len(key) < MinTokenKeyBytes {
		return nil, fmt.Errorf("token signing key: %d bytes, want at least %d", len(key), MinTokenKeyBytes)
	}
	return &TokenSigner{key: slices.Clone(key)}, nil
}

// Mint returns a token for app's topics valid from now for ttl, and what it
// grants. Expiry has the one-second precision of the JWT exp claim; the
// returned ExpiresAt is exactly the claim's value.
func (s *TokenSigner) Mint(app string, topics []string, ttl time.Duration, now time.Time) (string, BrowserToken, error) {
	return s.MintForKey("", app, topics, ttl, now)
}

// MintForKey is Mint for a token minted with the app key keyID, which the
// token names so that revoking the key ends it too.
func (s *TokenSigner) MintForKey(keyID, app string, topics []string, ttl time.Duration, now time.Time) (string, BrowserToken, error) {
	if ttl <= 0 {
		return "", BrowserToken{}, errors.New("mint token: ttl must be positive")
	}
	ts := slices.Clone(topics)
	slices.Sort(ts)
	ts = slices.Compact(ts)
	bt := BrowserToken{
		ID: randomHex(16), App: app, Topics: ts, KeyID: keyID,
		IssuedAt: now.Truncate(time.Second), ExpiresAt: now.Add(ttl).Truncate(time.Second),
	}
	if !bt.ExpiresAt.After(now) {
		// A ttl under a second would truncate to an already expired token.
		bt.ExpiresAt = bt.ExpiresAt.Add(time.Second)
	}
	claims := tokenClaims{
		App: app, Topics: ts, Key: keyID,
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        bt.ID,
			Issuer:    tokenIssuer,
			Audience:  jwt.ClaimStrings{tokenAudience},
			IssuedAt:  jwt.NewNumericDate(bt.IssuedAt),
			ExpiresAt: jwt.NewNumericDate(bt.ExpiresAt),
		},
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.key)
	if err != nil {
		return "", BrowserToken{}, fmt.Errorf("mint token: %w", err)
	}
	return signed, bt, nil
}

// Verify checks a presented token at time now. It returns ErrTokenInvalid
// (wrapped, with the reason) for a token that is malformed, signed with
// another key or algorithm, or not a Herald browser token, and a
// *TokenExpiredError for a genuine one whose expiry has passed. Expiry is
// judged only after the signature verifies, so a forged token is never
// told apart from a garbled one.
func (s *TokenSigner) Verify(token string, now time.Time) (BrowserToken, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithAudience(tokenAudience),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var c tokenClaims
	_, err := p.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.key, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired) && c.ExpiresAt != nil:
		return BrowserToken{}, &TokenExpiredError{ExpiredAt: c.ExpiresAt.Time}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return BrowserToken{}, fmt.Errorf("%w: malformed (not a JWT)", ErrTokenInvalid)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return BrowserToken{}, fmt.Errorf("%w: bad signature (minted by another server, or before the signing key changed)", ErrTokenInvalid)
	default:
		return BrowserToken{}, fmt.Errorf("%w: not a Herald browser token", ErrTokenInvalid)
	}
	if c.App == "" || len(c.Topics) == 0 || c.IssuedAt == nil {
		return BrowserToken{}, fmt.Errorf("%w: not a Herald browser token", ErrTokenInvalid)
	}
	ts := slices.Clone(c.Topics)
	slices.Sort(ts)
	return BrowserToken{
		ID: c.ID, App: c.App, Topics: ts, KeyID: c.Key,
		IssuedAt: c.IssuedAt.Time, ExpiresAt: c.ExpiresAt.Time,
	}, nil
}

// LooksLikeToken reports whether a presented credential has the shape of a
// browser token (a JWT: three base64url parts, the first a JSON object), so
// the API can tell it from an app key or the admin token without trying
// each verifier in turn.
func LooksLikeToken(s string) bool {
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2
}
