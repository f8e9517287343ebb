package amocrm_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/amocrmtest"
)

const (
	testAccess  = "access-token-VALUE-0001"
	testRefresh = "refresh-token-VALUE-0001"
)

// memTokens is the in-memory amocrm.TokenStore; the Postgres one is
// tested with the client in backend/store.
type memTokens = amocrmtest.Tokens

func newMemTokens(accountID int64, t amocrm.Token) *memTokens {
	m := amocrmtest.NewTokens()
	_ = m.SaveTokens(context.Background(), accountID, t)
	return m
}

var testNow = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func freshToken() amocrm.Token {
	return amocrm.Token{AccessToken: testAccess, RefreshToken: testRefresh, ExpiresAt: testNow.Add(24 * time.Hour)}
}

// testConfig is a Config with fast retries and a generous rate limit.
func testConfig(baseURL string, rdb redis.UniversalClient, tokens amocrm.TokenStore) amocrm.Config {
	return amocrm.Config{
		ClientID: "client-id", ClientSecret: "client-secret-VALUE", RedirectURI: "https://svyazka.test/oauth",
		BaseURL: baseURL, Redis: rdb, Tokens: tokens, Now: func() time.Time { return testNow },
		RateLimit: 1000, MaxRetries: 2, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
		MaxRetryAfter: 10 * time.Millisecond, RequestTimeout: 2 * time.Second,
	}
}

func newClient(t *testing.T, cfg amocrm.Config) *amocrm.Client {
	t.Helper()
	c, err := amocrm.New(cfg)
	require.NoError(t, err)
	return c
}

// recorder is a fake amoCRM that counts requests per "METHOD path".
type recorder struct {
	mu   sync.Mutex
	hits map[string]int
}

func (r *recorder) hit(req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hits == nil {
		r.hits = map[string]int{}
	}
	r.hits[req.Method+" "+req.URL.Path]++
}

func (r *recorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[key]
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.hits {
		n += v
	}
	return n
}

// fakeServer serves h, counting every request.
func fakeServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.hit(r)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

func writeJSON(w http.ResponseWriter, status int, contentType string, body any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func problem(status int, title, detail string) map[string]any {
	return map[string]any{"title": title, "type": "https://httpstatus.es/" + http.StatusText(status), "status": status, "detail": detail}
}

func writeHTML(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	text := http.StatusText(status)
	_, _ = w.Write([]byte("<html>\n<head><title>" + text + "</title></head>\n<body><center><h1>" + text + "</h1></center><hr><center>nginx</center></body>\n</html>\n"))
}

func redisClient(t *testing.T) (*redis.Options, *redis.Client) {
	t.Helper()
	opts := amocrmtest.Redis(t)
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return opts, c
}

func secondRedis(t *testing.T, opts *redis.Options) *redis.Client {
	t.Helper()
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func noToken(t *testing.T, err error) {
	t.Helper()
	for _, secret := range []string{testAccess, testRefresh, "client-secret-VALUE"} {
		require.False(t, strings.Contains(err.Error(), secret), "error leaks a secret: %v", err)
	}
}
