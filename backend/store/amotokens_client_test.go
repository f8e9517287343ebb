package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/amocrmtest"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

// TestAmoTokensClientRefreshRotation: two amoCRM Clients (two processes),
// each with its own AmoTokens and Redis connection, share one database, and
// several workers in each find the access token expired at once. The row
// lock lets exactly one refresh reach amoCRM; everyone uses the rotated
// token, which is stored sealed.
func TestAmoTokensClientRefreshRotation(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	acc := install(t, db, 901, now)
	rot := amocrmtest.NewRotator(t, "access-token-VALUE-0001", "refresh-token-VALUE-0001")
	key := make([]byte, sealer.KeySize)
	_, _ = rand.Read(key)
	s, err := sealer.New(key)
	require.NoError(t, err)
	first, err := store.NewAmoTokens(db, s)
	require.NoError(t, err)
	require.NoError(t, first.SaveTokens(context.Background(), acc.ID,
		amocrm.Token{AccessToken: "access-token-VALUE-0001", RefreshToken: "refresh-token-VALUE-0001", ExpiresAt: now.Add(30 * time.Second)}))
	second, err := store.NewAmoTokens(db, s)
	require.NoError(t, err)

	opts := redistest.New(t)
	var clients []*amocrm.Client
	for _, tokens := range []*store.AmoTokens{first, second} {
		rdb := redis.NewClient(opts)
		t.Cleanup(func() { _ = rdb.Close() })
		c, err := amocrm.New(amocrm.Config{
			ClientID: "client-id", ClientSecret: "client-secret-VALUE", RedirectURI: "https://svyazka.test/oauth",
			BaseURL: rot.URL, Redis: rdb, Tokens: tokens, Now: func() time.Time { return now },
			RateLimit: 1000, MaxRetries: 2, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
			MaxRetryAfter: 10 * time.Millisecond, RequestTimeout: 2 * time.Second,
		})
		require.NoError(t, err)
		clients = append(clients, c)
	}
	rot.Race(t, clients, amocrm.AccountRef{ID: acc.ID}, 4) // the test database allows 5 connections

	got, err := second.Tokens(context.Background(), acc.ID)
	require.NoError(t, err)
	require.Equal(t, "access-1", got.AccessToken)
	require.Equal(t, "refresh-1", got.RefreshToken)
	var access, refresh []byte
	require.NoError(t, db.SQL().QueryRowContext(context.Background(),
		`SELECT access_token_enc, refresh_token_enc FROM amo_tokens WHERE account_id = $1`, acc.ID).Scan(&access, &refresh))
	require.False(t, bytes.Contains(access, []byte("access-1")), "the rotated access token is sealed")
	require.False(t, bytes.Contains(refresh, []byte("refresh-1")), "the rotated refresh token is sealed")
}
