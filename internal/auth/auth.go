// Package auth owns Herald's credentials: app keys (generation, parsing,
// hashing, constant-time verification, scopes) and the admin token. It is
// pure logic; keys are read through the narrow KeyGetter interface, which the
// store satisfies.
//
// An app key looks like "hk_<id>_<secret>". The id is public and indexes the
// key in storage; only a SHA-256 hash of the secret is stored. The secret has
// 256 bits of entropy, so a fast hash is the right one: there is nothing for
// a slow hash to protect against.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/heraldhq/herald/internal/store"
)

// ErrUnauthenticated means no credential was given, or it is not valid.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrForbidden means the credential is valid but may not do this.
var ErrForbidden = errors.New("forbidden")

const keyPrefix = "hk_"

// KeyGetter reads a stored key by its id. store.Store satisfies it.
type KeyGetter interface {
	GetKey(ctx context.Context, keyID string) (store.Key, error)
}

// NewKey generates a key for app with scopes. It returns the stored form and
// the full key string, which is shown to the user once and never stored.
func NewKey(appID string, scopes []store.Scope) (store.Key, string) {
	id := randomHex(8)
	secret := randomHex(32)
	return store.Key{
		ID:         id,
		AppID:      appID,
		SecretHash: hashSecret(secret),
		Scopes:     slices.Clone(scopes),
	}, keyPrefix + id + "_" + secret
}

// NewID returns a random identifier for an app.
func NewID() string { return randomHex(8) }

// Verify checks a presented key and returns its stored form.
func Verify(ctx context.Context, keys KeyGetter, presented string) (store.Key, error) {
	rest, ok := strings.CutPrefix(presented, keyPrefix)
	if !ok {
		return store.Key{}, ErrUnauthenticated
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" {
		return store.Key{}, ErrUnauthenticated
	}
	k, err := keys.GetKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Hash anyway, so an unknown id costs the same as a wrong secret.
		subtle.ConstantTimeCompare(hashSecret(secret), hashSecret(id))
		return store.Key{}, ErrUnauthenticated
	}
	if err != nil {
		return store.Key{}, fmt.Errorf("look up key: %w", err)
	}
	if subtle.ConstantTimeCompare(hashSecret(secret), k.SecretHash) != 1 {
		return store.Key{}, ErrUnauthenticated
	}
	return k, nil
}

// HasScope reports whether k holds scope.
func HasScope(k store.Key, scope store.Scope) bool {
	return slices.Contains(k.Scopes, scope)
}

// AdminToken is the install-wide credential that manages apps.
type AdminToken struct {
	hash []byte
}

// NewAdminToken wraps a configured admin token. An empty token matches
// nothing.
func NewAdminToken(token string) AdminToken {
	if token == "" {
		return AdminToken{}
	}
	return AdminToken{hash: hashSecret(token)}
}

// Verify reports, in constant time, whether presented is the admin token.
func (a AdminToken) Verify(presented string) bool {
	return len(a.hash) > 0 && subtle.ConstantTimeCompare(hashSecret(presented), a.hash) == 1
}

const adminTokenFile = "admin-token"

// AdminTokenPath is the file in dataDir that keeps the admin token.
func AdminTokenPath(dataDir string) string { return filepath.Join(dataDir, adminTokenFile) }

// AdminTokenSetting is the name of the store setting that keeps the admin
// token in cluster mode.
const AdminTokenSetting = "admin_token"

// LoadOrCreateAdminToken returns the admin token kept in dataDir, creating it
// (mode 0600) when there is none. created reports whether it was made now,
// so the caller can show it once.
func LoadOrCreateAdminToken(dataDir string) (token string, created bool, err error) {
	path := AdminTokenPath(dataDir)
	b, err := os.ReadFile(path)
	if err == nil {
		token = strings.TrimSpace(string(b))
		if token == "" {
			return "", false, fmt.Errorf("admin token file %s is empty: delete it to generate a new token", path)
		}
		return token, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read admin token: %w", err)
	}
	token = GenerateAdminToken()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("create admin token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	return token, true, nil
}

// ReadAdminToken returns the admin token kept in dataDir, or "" when there
// is none.
func ReadAdminToken(dataDir string) (string, error) {
	path := AdminTokenPath(dataDir)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// RotateAdminToken replaces the admin token kept in dataDir (creating the
// directory and the token when there are none) with a new one and returns
// it. The file is replaced whole (written aside, then renamed), mode 0600,
// so a server starting meanwhile reads the old token or the new one.
func RotateAdminToken(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	token := GenerateAdminToken()
	f, err := os.CreateTemp(dataDir, adminTokenFile+".*")
	if err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // after the rename there is nothing to remove, and that error says nothing
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	if err := os.Rename(f.Name(), AdminTokenPath(dataDir)); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return token, nil
}

// MinAdminTokenLength is the shortest admin token Herald accepts from
// --admin-token: the generated ones are far longer, and the admin token
// also keys browser tokens unless --token-secret is set.
const MinAdminTokenLength = 32

// GenerateAdminToken returns a new random admin token.
func GenerateAdminToken() string { return "ha_" + randomHex(32) }

func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand panics rather than return an error
	return hex.EncodeToString(b)
}
