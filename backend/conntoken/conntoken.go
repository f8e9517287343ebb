// Package conntoken makes and checks connector tokens: the secret a clinic's IT
// person pastes into the connector to tie it to one clinic database. Only the
// SHA-256 of a token is stored, so a database leak reveals no usable token.
package conntoken

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// Prefix marks Svyazka connector tokens so they are recognisable in support chats and secret scanners.
const Prefix = "svz_"

// ErrMalformed is returned for a string that cannot be a connector token.
var ErrMalformed = errors.New("conntoken: malformed token")

// New returns a fresh token and its hash.
func New() (token string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	token = Prefix + base64.RawURLEncoding.EncodeToString(b)
	return token, Hash(token)
}

// Hash returns the stored form of a token.
func Hash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// Parse trims a pasted token (spaces, line breaks) and checks its shape.
func Parse(raw string) (string, error) {
	t := strings.TrimSpace(raw)
	body, ok := strings.CutPrefix(t, Prefix)
	if !ok || len(body) != 43 {
		return "", ErrMalformed
	}
	if _, err := base64.RawURLEncoding.DecodeString(body); err != nil {
		return "", ErrMalformed
	}
	return t, nil
}
