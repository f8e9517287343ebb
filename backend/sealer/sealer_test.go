package sealer_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/sealer"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, sealer.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	return key
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	s, err := sealer.New(newKey(t))
	require.NoError(t, err)

	secret := []byte("refresh-token-value")
	sealed, err := s.Seal(secret, []byte("account:1"))
	require.NoError(t, err)
	require.False(t, bytes.Contains(sealed, secret), "sealed value must not contain the plaintext")

	t.Run("OK", func(t *testing.T) {
		got, err := s.Open(sealed, []byte("account:1"))
		require.NoError(t, err)
		require.Equal(t, secret, got)
	})
	t.Run("ErrCorruptOtherContext", func(t *testing.T) {
		_, err := s.Open(sealed, []byte("account:2"))
		require.True(t, errors.Is(err, sealer.ErrCorrupt))
	})
	t.Run("ErrCorruptTampered", func(t *testing.T) {
		tampered := bytes.Clone(sealed)
		tampered[len(tampered)-1] ^= 1
		_, err := s.Open(tampered, []byte("account:1"))
		require.True(t, errors.Is(err, sealer.ErrCorrupt))
	})
	t.Run("ErrCorruptTruncated", func(t *testing.T) {
		_, err := s.Open(sealed[:5], []byte("account:1"))
		require.True(t, errors.Is(err, sealer.ErrCorrupt))
	})
	t.Run("ErrCorruptOtherKey", func(t *testing.T) {
		other, err := sealer.New(newKey(t))
		require.NoError(t, err)
		_, err = other.Open(sealed, []byte("account:1"))
		require.True(t, errors.Is(err, sealer.ErrCorrupt))
	})
	t.Run("FreshNonce", func(t *testing.T) {
		again, err := s.Seal(secret, []byte("account:1"))
		require.NoError(t, err)
		require.NotEqual(t, sealed, again)
	})
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	for name, encoded := range map[string]string{
		"Std":    base64.StdEncoding.EncodeToString(key),
		"RawStd": base64.RawStdEncoding.EncodeToString(key),
		"URL":    base64.URLEncoding.EncodeToString(key),
	} {
		got, err := sealer.ParseKey(encoded)
		require.NoError(t, err, name)
		require.Equal(t, key, got, name)
	}
	_, err := sealer.ParseKey(base64.StdEncoding.EncodeToString(key[:16]))
	require.ErrorContains(t, err, "32 bytes")
	_, err = sealer.ParseKey("not base64 !!!")
	require.Error(t, err)
	_, err = sealer.New(key[:10])
	require.Error(t, err)
}
