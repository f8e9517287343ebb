package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

func newAmoTokens(t *testing.T, db *store.DB) *store.AmoTokens {
	t.Helper()
	key := make([]byte, sealer.KeySize)
	_, err := rand.Read(key)
	require.NoError(t, err)
	s, err := sealer.New(key)
	require.NoError(t, err)
	tokens, err := store.NewAmoTokens(db, s)
	require.NoError(t, err)
	return tokens
}

func TestAmoTokens(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tokens := newAmoTokens(t, db)
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	acc := install(t, db, 501, now)
	other := install(t, db, 502, now)
	tok := amocrm.Token{AccessToken: "access-token-secret-501", RefreshToken: "refresh-token-secret-501", ExpiresAt: now.Add(24 * time.Hour)}
	require.NoError(t, tokens.SaveTokens(ctx, acc.ID, tok))

	t.Run("RoundTrip", func(t *testing.T) {
		got, err := tokens.Tokens(ctx, acc.ID)
		require.NoError(t, err)
		require.Empty(t, cmp.Diff(tok, got))
	})
	t.Run("SealedAtRest", func(t *testing.T) {
		var access, refresh []byte
		var whole string
		require.NoError(t, db.SQL().QueryRowContext(ctx,
			`SELECT access_token_enc, refresh_token_enc, t::text FROM amo_tokens t WHERE account_id = $1`, acc.ID).
			Scan(&access, &refresh, &whole))
		for _, secret := range []string{tok.AccessToken, tok.RefreshToken} {
			require.False(t, bytes.Contains(access, []byte(secret)))
			require.False(t, bytes.Contains(refresh, []byte(secret)))
			require.NotContains(t, whole, secret)
		}
	})
	t.Run("ErrCorruptWhenCopiedToAnotherAccount", func(t *testing.T) {
		_, err := db.SQL().ExecContext(ctx, `INSERT INTO amo_tokens (account_id, access_token_enc, refresh_token_enc, expires_at)
			SELECT $2, access_token_enc, refresh_token_enc, expires_at FROM amo_tokens WHERE account_id = $1`, acc.ID, other.ID)
		require.NoError(t, err)
		_, err = tokens.Tokens(ctx, other.ID)
		require.ErrorIs(t, err, sealer.ErrCorrupt)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := tokens.Tokens(ctx, acc.ID+1000)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tokens.UpdateTokens(ctx, acc.ID+1000, func(cur amocrm.Token) (amocrm.Token, error) { return cur, nil })
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, tokens.MarkRevoked(ctx, acc.ID+1000, now), store.ErrNotFound)
	})
}

func TestAmoTokensUpdateSerialises(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tokens := newAmoTokens(t, db)
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	acc := install(t, db, 601, now)
	old := amocrm.Token{AccessToken: "old-access", RefreshToken: "old-refresh", ExpiresAt: now}
	require.NoError(t, tokens.SaveTokens(ctx, acc.ID, old))
	rotated := amocrm.Token{AccessToken: "new-access", RefreshToken: "new-refresh", ExpiresAt: now.Add(24 * time.Hour)}

	// Every worker saw the old token expire; the first to get the lock
	// rotates it, the others must find the rotation done.
	var refreshes atomic.Int32
	var wg sync.WaitGroup
	results := make([]amocrm.Token, 4) // the test database allows 5 connections
	errs := make([]error, len(results))
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = tokens.UpdateTokens(ctx, acc.ID, func(cur amocrm.Token) (amocrm.Token, error) {
				if cur.RefreshToken != old.RefreshToken {
					return cur, nil
				}
				refreshes.Add(1)
				time.Sleep(50 * time.Millisecond) // hold the lock while the others queue
				return rotated, nil
			})
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, refreshes.Load())
	for i := range results {
		require.NoError(t, errs[i])
		require.Empty(t, cmp.Diff(rotated, results[i]))
	}
	got, err := tokens.Tokens(ctx, acc.ID)
	require.NoError(t, err)
	require.Empty(t, cmp.Diff(rotated, got))

	t.Run("ErrorRollsBack", func(t *testing.T) {
		boom := errors.New("refresh failed")
		_, err := tokens.UpdateTokens(ctx, acc.ID, func(amocrm.Token) (amocrm.Token, error) {
			return amocrm.Token{AccessToken: "lost", RefreshToken: "lost", ExpiresAt: now}, boom
		})
		require.ErrorIs(t, err, boom)
		got, err := tokens.Tokens(ctx, acc.ID)
		require.NoError(t, err)
		require.Empty(t, cmp.Diff(rotated, got))
	})
}

func TestAmoTokensMarkRevoked(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tokens := newAmoTokens(t, db)
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	acc := install(t, db, 701, now)
	tok := amocrm.Token{AccessToken: "a", RefreshToken: "r", ExpiresAt: now.Add(time.Hour)}
	require.NoError(t, tokens.SaveTokens(ctx, acc.ID, tok))

	require.NoError(t, tokens.MarkRevoked(ctx, acc.ID, now))
	require.NoError(t, tokens.MarkRevoked(ctx, acc.ID, now.Add(time.Hour)), "a second mark keeps the first time")
	got, err := tokens.Tokens(ctx, acc.ID)
	require.NoError(t, err)
	require.True(t, got.Revoked())
	require.Equal(t, now, got.RevokedAt)

	require.NoError(t, tokens.SaveTokens(ctx, acc.ID, tok), "a re-install stores a new pair")
	got, err = tokens.Tokens(ctx, acc.ID)
	require.NoError(t, err)
	require.False(t, got.Revoked())
}

func TestAmoTokensSavedWithInstall(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tokens := newAmoTokens(t, db)
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	tok := amocrm.Token{AccessToken: "a", RefreshToken: "r", ExpiresAt: now.Add(time.Hour)}
	acc, _, err := db.InstallAccount(ctx, store.InstallInput{AmoAccountID: 801, Subdomain: "clinic801", BaseDomain: "amocrm.ru",
		TrialDays: 14, Now: now, Save: func(tx *store.Tx, a store.Account) error { return tokens.SaveTokensIn(tx, a.ID, tok) }})
	require.NoError(t, err)
	got, err := tokens.Tokens(ctx, acc.ID)
	require.NoError(t, err)
	require.Empty(t, cmp.Diff(tok, got))
}
