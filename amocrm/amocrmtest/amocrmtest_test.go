package amocrmtest_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/amocrmtest"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	tok := amocrm.Token{AccessToken: "a0", RefreshToken: "r0", ExpiresAt: now.Add(time.Hour)}

	t.Run("ErrNoTokens", func(t *testing.T) {
		s := amocrmtest.NewTokens()
		_, err := s.Tokens(ctx, 1)
		require.ErrorIs(t, err, amocrmtest.ErrNoTokens)
		_, err = s.UpdateTokens(ctx, 1, func(cur amocrm.Token) (amocrm.Token, error) { return cur, nil })
		require.ErrorIs(t, err, amocrmtest.ErrNoTokens)
		require.ErrorIs(t, s.MarkRevoked(ctx, 1, now), amocrmtest.ErrNoTokens)
	})
	t.Run("Revocation", func(t *testing.T) {
		s := amocrmtest.NewTokens()
		require.NoError(t, s.SaveTokens(ctx, 1, tok))
		require.NoError(t, s.MarkRevoked(ctx, 1, now))
		require.NoError(t, s.MarkRevoked(ctx, 1, now.Add(time.Hour)))
		got, err := s.Tokens(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, now, got.RevokedAt, "an earlier mark is kept")
		unchanged, err := s.UpdateTokens(ctx, 1, func(cur amocrm.Token) (amocrm.Token, error) { return cur, nil })
		require.NoError(t, err)
		require.True(t, unchanged.Revoked(), "an unchanged token stays revoked")
		require.NoError(t, s.SaveTokens(ctx, 1, tok))
		got, _ = s.Tokens(ctx, 1)
		require.False(t, got.Revoked(), "a new pair clears the revocation")
	})
	t.Run("UpdateErrorStoresNothing", func(t *testing.T) {
		s := amocrmtest.NewTokens()
		require.NoError(t, s.SaveTokens(ctx, 1, tok))
		boom := errors.New("boom")
		_, err := s.UpdateTokens(ctx, 1, func(amocrm.Token) (amocrm.Token, error) { return amocrm.Token{AccessToken: "x"}, boom })
		require.ErrorIs(t, err, boom)
		got, _ := s.Tokens(ctx, 1)
		require.Equal(t, "a0", got.AccessToken)
	})
	t.Run("SerialisedUpdates", func(t *testing.T) {
		s := amocrmtest.NewTokens()
		require.NoError(t, s.SaveTokens(ctx, 1, tok))
		var inside, most atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, err := s.UpdateTokens(ctx, 1, func(cur amocrm.Token) (amocrm.Token, error) {
					n := inside.Add(1)
					defer inside.Add(-1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					time.Sleep(time.Millisecond)
					cur.AccessToken += "+"
					return cur, nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		require.EqualValues(t, 1, most.Load(), "one update at a time")
		got, _ := s.Tokens(ctx, 1)
		require.Equal(t, "a0++++++++", got.AccessToken, "each update saw its predecessor's result")
	})
	t.Run("ReadsDoNotWaitForTheLock", func(t *testing.T) {
		s := amocrmtest.NewTokens()
		require.NoError(t, s.SaveTokens(ctx, 1, tok))
		held, release := make(chan struct{}), make(chan struct{})
		go func() {
			_, _ = s.UpdateTokens(ctx, 1, func(cur amocrm.Token) (amocrm.Token, error) {
				close(held)
				<-release
				return cur, nil
			})
		}()
		<-held
		defer close(release)
		_, err := s.Tokens(ctx, 1)
		require.NoError(t, err)
		waiting, cancel := context.WithCancel(ctx)
		cancel()
		_, err = s.UpdateTokens(waiting, 1, func(cur amocrm.Token) (amocrm.Token, error) { return cur, nil })
		require.ErrorIs(t, err, context.Canceled, "a waiter gives up with its context")
	})
}
