package coordinator

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// A token secret is tokenPrefix followed by 43 characters of unpadded
// base64url (32 random bytes). Only its SHA-256 is stored.
const (
	tokenPrefix    = "spt_"
	tokenSecretLen = len(tokenPrefix) + 43
	bearerScheme   = "bearer"
)

// ErrMalformedToken: a bearer header or secret that is not one of ours.
var ErrMalformedToken = errors.New("malformed bearer token")

// NewTokenSecret returns a fresh high-entropy token secret.
func NewTokenSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token secret: %w", err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// newAccessorID is a token's public id: 16 hex characters.
func newAccessorID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token accessor id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ParseBearer extracts the secret from an authorization header value
// ("Bearer spt_..."; the scheme is case-insensitive) and checks its form.
// The error never repeats the value (it may be a secret).
func ParseBearer(v string) (string, error) {
	scheme, secret, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, bearerScheme) {
		return "", fmt.Errorf(`%w: want "authorization: Bearer <secret>"`, ErrMalformedToken)
	}
	secret = strings.TrimSpace(secret)
	if err := CheckTokenSecret(secret); err != nil {
		return "", err
	}
	return secret, nil
}

// CheckTokenSecret checks that secret has the form NewTokenSecret makes.
func CheckTokenSecret(secret string) error {
	if !strings.HasPrefix(secret, tokenPrefix) {
		return fmt.Errorf("%w: a token secret starts with %q", ErrMalformedToken, tokenPrefix)
	}
	if len(secret) != tokenSecretLen {
		return fmt.Errorf("%w: a token secret is %d characters, this one %d", ErrMalformedToken, tokenSecretLen, len(secret))
	}
	b, err := base64.RawURLEncoding.DecodeString(secret[len(tokenPrefix):])
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%w: the part after %q is not 32 bytes of base64url", ErrMalformedToken, tokenPrefix)
	}
	return nil
}

// tokenHash is what the FSM stores for a secret.
func tokenHash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
