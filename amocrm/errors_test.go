package amocrm_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
)

const accountPath = "/api/v4/account"

func okAccount(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, "application/hal+json", map[string]any{"id": 321, "name": "Клиника", "subdomain": "clinic"})
}

func okToken(w http.ResponseWriter, access string) {
	writeJSON(w, http.StatusOK, "application/json", map[string]any{"token_type": "Bearer", "expires_in": 86400,
		"access_token": access, "refresh_token": "rotated-" + access})
}

func TestErrors(t *testing.T) {
	t.Parallel()
	getAccount := func(ctx context.Context, api *amocrm.AccountAPI) error {
		_, err := api.GetAccount(ctx)
		return err
	}
	createContact := func(ctx context.Context, api *amocrm.AccountAPI) error {
		_, err := api.CreateContacts(ctx, []amocrm.Contact{{Name: "Иванов"}})
		return err
	}
	tests := []struct {
		name string
		// api answers the n-th (1-based) API request.
		api   func(w http.ResponseWriter, n int)
		oauth func(w http.ResponseWriter)
		call  func(context.Context, *amocrm.AccountAPI) error
		want  error // nil: success
		// apiHits and oauthHits are the requests the server must have seen.
		apiHits, oauthHits int
		check              func(t *testing.T, err error)
	}{
		{
			name: "ErrValidation",
			api: func(w http.ResponseWriter, _ int) {
				body := problem(400, "Bad Request", "Request validation failed")
				body["validation-errors"] = []map[string]any{{"request_id": "0", "errors": []map[string]any{
					{"code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id", "detail": "The value you selected is not a valid choice."}}}}
				writeJSON(w, 400, "application/problem+json", body)
			},
			call: createContact, want: amocrm.ErrValidation, apiHits: 1,
			check: func(t *testing.T, err error) {
				var ve *amocrm.ValidationError
				require.ErrorAs(t, err, &ve)
				require.Equal(t, 400, ve.Status)
				want := []amocrm.ItemErrors{{RequestID: "0", Errors: []amocrm.FieldError{{Code: "NotSupportedChoice",
					Path: "custom_fields_values.0.field_id", Detail: "The value you selected is not a valid choice."}}}}
				require.Empty(t, cmp.Diff(want, ve.Items))
			},
		},
		{
			name: "ErrValidationTooMany422",
			api: func(w http.ResponseWriter, _ int) {
				writeJSON(w, 422, "application/problem+json", problem(422, "Unprocessable Entity", "Limit 250 per page"))
			},
			call: createContact, want: amocrm.ErrValidation, apiHits: 1,
		},
		{
			name: "ErrUnauthorizedAfterOneRefresh",
			api: func(w http.ResponseWriter, _ int) {
				writeJSON(w, 401, "application/problem+json", problem(401, "Unauthorized", ""))
			},
			oauth: func(w http.ResponseWriter) { okToken(w, "second-access-token") },
			call:  getAccount, want: amocrm.ErrUnauthorized, apiHits: 2, oauthHits: 1,
		},
		{
			name: "RefreshedOn401",
			api: func(w http.ResponseWriter, n int) {
				if n == 1 {
					writeJSON(w, 401, "application/problem+json", problem(401, "Unauthorized", ""))
					return
				}
				okAccount(w)
			},
			oauth: func(w http.ResponseWriter) { okToken(w, "second-access-token") },
			call:  getAccount, apiHits: 2, oauthHits: 1,
		},
		{
			name: "ErrRevoked",
			api: func(w http.ResponseWriter, _ int) {
				writeJSON(w, 401, "application/problem+json", problem(401, "Unauthorized", ""))
			},
			oauth: func(w http.ResponseWriter) {
				body := problem(400, "Некорректный запрос", "Invalid refresh token")
				body["hint"] = "Token has been revoked"
				writeJSON(w, 400, "application/problem+json", body)
			},
			call: getAccount, want: amocrm.ErrRevoked, apiHits: 1, oauthHits: 1,
		},
		{
			name: "ErrPaymentRequired",
			api: func(w http.ResponseWriter, _ int) {
				writeJSON(w, 402, "application/problem+json", problem(402, "Payment Required", "Account is not paid"))
			},
			call: getAccount, want: amocrm.ErrPaymentRequired, apiHits: 1,
		},
		{
			name: "ErrForbiddenJSON",
			api: func(w http.ResponseWriter, _ int) {
				writeJSON(w, 403, "application/problem+json", problem(403, "Forbidden", "Access denied"))
			},
			call: getAccount, want: amocrm.ErrForbidden, apiHits: 1,
		},
		{
			name: "ErrRateLimitedJSON",
			api: func(w http.ResponseWriter, _ int) {
				body := problem(429, "Too Many Requests", "")
				body["retry_after"] = 300 // capped by MaxRetryAfter
				writeJSON(w, 429, "application/problem+json", body)
			},
			call: getAccount, want: amocrm.ErrRateLimited, apiHits: 3,
		},
		{
			name: "ErrRateLimitedHTML",
			api: func(w http.ResponseWriter, _ int) {
				w.Header().Set("Retry-After", "1")
				writeHTML(w, 429)
			},
			call: createContact, want: amocrm.ErrRateLimited, apiHits: 3,
		},
		{
			name: "RateLimitedThenOK",
			api: func(w http.ResponseWriter, n int) {
				if n == 1 {
					writeHTML(w, 429)
					return
				}
				okAccount(w)
			},
			call: getAccount, apiHits: 2,
		},
		{
			name: "ErrTransient500",
			api: func(w http.ResponseWriter, _ int) {
				writeJSON(w, 500, "application/problem+json", problem(500, "Internal Server Error", ""))
			},
			call: getAccount, want: amocrm.ErrTransient, apiHits: 3,
		},
		{
			name: "ErrTransient502",
			api:  func(w http.ResponseWriter, _ int) { writeHTML(w, 502) },
			call: getAccount, want: amocrm.ErrTransient, apiHits: 3,
		},
		{
			name: "ErrTransient504",
			api:  func(w http.ResponseWriter, _ int) { writeHTML(w, 504) },
			call: getAccount, want: amocrm.ErrTransient, apiHits: 3,
		},
		{
			name: "TransientThenOK",
			api: func(w http.ResponseWriter, n int) {
				if n < 3 {
					writeHTML(w, 503)
					return
				}
				okAccount(w)
			},
			call: getAccount, apiHits: 3,
		},
		{
			// A create whose answer was lost may have happened: not retried.
			name: "CreateNotRetriedOn504",
			api:  func(w http.ResponseWriter, _ int) { writeHTML(w, 504) },
			call: createContact, want: amocrm.ErrTransient, apiHits: 1,
		},
		{
			// The gateway could not reach amoCRM: the create did not happen.
			name: "CreateRetriedOn502",
			api:  func(w http.ResponseWriter, _ int) { writeHTML(w, 502) },
			call: createContact, want: amocrm.ErrTransient, apiHits: 3,
		},
		{
			name: "ErrTransientTimeout",
			api: func(w http.ResponseWriter, _ int) {
				time.Sleep(300 * time.Millisecond)
				okAccount(w)
			},
			call: getAccount, want: amocrm.ErrTransient, apiHits: 3,
		},
		{
			name: "ErrNotFound204",
			api:  func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusNoContent) },
			call: func(ctx context.Context, api *amocrm.AccountAPI) error {
				c, err := api.Contact(ctx, 42)
				if c != nil {
					return errors.New("contact must be nil")
				}
				return err
			},
			want: amocrm.ErrNotFound, apiHits: 1,
		},
		{
			name: "ErrMalformedJSON",
			api: func(w http.ResponseWriter, _ int) {
				w.Header().Set("Content-Type", "application/hal+json")
				_, _ = w.Write([]byte(`{"id": 1, "name": `))
			},
			call: getAccount, want: amocrm.ErrMalformed, apiHits: 1,
		},
		{
			name: "ErrMalformedShape",
			api: func(w http.ResponseWriter, _ int) {
				writeJSON(w, 200, "application/hal+json", map[string]any{"_embedded": map[string]any{"contacts": "nope"}})
			},
			call: func(ctx context.Context, api *amocrm.AccountAPI) error {
				_, err := api.Contacts(ctx, amocrm.ListParams{})
				return err
			},
			want: amocrm.ErrMalformed, apiHits: 1,
		},
		{
			name: "ErrMalformedMissingAnswers",
			api: func(w http.ResponseWriter, _ int) {
				writeJSON(w, 200, "application/hal+json", map[string]any{"_embedded": map[string]any{"contacts": []any{}}})
			},
			call: createContact, want: amocrm.ErrMalformed, apiHits: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var apiHits atomic.Int32
			srv, rec := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/oauth2/access_token" {
					tt.oauth(w)
					return
				}
				tt.api(w, int(apiHits.Add(1)))
			})
			_, rdb := redisClient(t)
			tokens := newMemTokens(1, freshToken())
			cfg := testConfig(srv.URL, rdb, tokens)
			cfg.RequestTimeout = 100 * time.Millisecond
			api := newClient(t, cfg).Account(amocrm.AccountRef{ID: 1, Subdomain: "clinic"})

			err := tt.call(context.Background(), api)
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.want)
				noToken(t, err)
			}
			require.EqualValues(t, tt.apiHits, apiHits.Load(), "API requests")
			require.Equal(t, tt.oauthHits, rec.count("POST /oauth2/access_token"), "OAuth requests")
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

func TestRevokedIsRemembered(t *testing.T) {
	t.Parallel()
	srv, rec := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth2/access_token" {
			writeJSON(w, 400, "application/problem+json", problem(400, "Bad Request", "Invalid refresh token"))
			return
		}
		writeJSON(w, 401, "application/problem+json", problem(401, "Unauthorized", ""))
	})
	_, rdb := redisClient(t)
	tokens := newMemTokens(1, freshToken())
	api := newClient(t, testConfig(srv.URL, rdb, tokens)).Account(amocrm.AccountRef{ID: 1})
	ctx := context.Background()

	_, err := api.GetAccount(ctx)
	require.ErrorIs(t, err, amocrm.ErrRevoked)
	tok, err := tokens.Tokens(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, testNow, tok.RevokedAt)

	before := rec.total()
	_, err = api.GetAccount(ctx)
	require.ErrorIs(t, err, amocrm.ErrRevoked)
	require.Equal(t, before, rec.total(), "a revoked account makes no request")
}

func TestBlocked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter, n int)
		hits   int
	}{
		{name: "HTML403", answer: func(w http.ResponseWriter, _ int) { writeHTML(w, 403) }, hits: 1},
		{name: "JSON403AfterRepeated429", hits: 3, answer: func(w http.ResponseWriter, n int) {
			if n < 3 {
				writeJSON(w, 429, "application/problem+json", problem(429, "Too Many Requests", ""))
				return
			}
			writeJSON(w, 403, "application/problem+json", problem(403, "Forbidden", ""))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv, rec := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("account") == "2" || r.Header.Get("Authorization") == "Bearer other-account-token" {
					okAccount(w)
					return
				}
				tt.answer(w, int(n.Add(1)))
			})
			opts, rdb := redisClient(t)
			tokens := newMemTokens(1, freshToken())
			_ = tokens.SaveTokens(context.Background(), 2, amocrm.Token{AccessToken: "other-account-token", RefreshToken: "x", ExpiresAt: testNow.Add(time.Hour)})
			var blocked []int64
			cfg := testConfig(srv.URL, rdb, tokens)
			cfg.OnBlocked = func(id int64, err error) {
				require.ErrorIs(t, err, amocrm.ErrBlocked)
				blocked = append(blocked, id)
			}
			first := newClient(t, cfg)
			cfg2 := cfg
			cfg2.Redis = secondRedis(t, opts)
			second := newClient(t, cfg2)
			ctx := context.Background()

			_, err := first.Account(amocrm.AccountRef{ID: 1}).GetAccount(ctx)
			require.ErrorIs(t, err, amocrm.ErrBlocked)
			require.Equal(t, tt.hits, rec.total())
			require.Equal(t, []int64{1}, blocked)

			for _, c := range []*amocrm.Client{first, second} {
				_, err = c.Account(amocrm.AccountRef{ID: 1}).GetAccount(ctx)
				require.ErrorIs(t, err, amocrm.ErrBlocked)
				_, err = c.Account(amocrm.AccountRef{ID: 1}).CreateContacts(ctx, []amocrm.Contact{{Name: "x"}})
				require.ErrorIs(t, err, amocrm.ErrBlocked)
			}
			require.Equal(t, tt.hits, rec.total(), "no request reaches amoCRM after a block")
			require.Equal(t, []int64{1}, blocked, "OnBlocked is called once")
			ok, err := second.Blocked(ctx, 1)
			require.NoError(t, err)
			require.True(t, ok)

			_, err = second.Account(amocrm.AccountRef{ID: 2}).GetAccount(ctx)
			require.NoError(t, err, "another account is not blocked")

			require.NoError(t, second.Unblock(ctx, 1))
			_, _ = first.Account(amocrm.AccountRef{ID: 1}).GetAccount(ctx)
			require.Greater(t, rec.total(), tt.hits+1, "calls resume after Unblock")
		})
	}
}

func TestContextCancelStopsRetries(t *testing.T) {
	t.Parallel()
	srv, rec := fakeServer(t, func(w http.ResponseWriter, _ *http.Request) { writeHTML(w, 503) })
	_, rdb := redisClient(t)
	cfg := testConfig(srv.URL, rdb, newMemTokens(1, freshToken()))
	cfg.MaxRetries = 100
	cfg.RetryBaseDelay = time.Hour
	cfg.RetryMaxDelay = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := newClient(t, cfg).Account(amocrm.AccountRef{ID: 1}).GetAccount(ctx)
		done <- err
	}()
	require.Eventually(t, func() bool { return rec.total() == 1 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Equal(t, 1, rec.total())
}
