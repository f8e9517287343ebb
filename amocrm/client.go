// Package amocrm is Svyazka's client for amoCRM's OAuth 2.0 and REST API v4.
//
// One Client serves every account. It keeps amoCRM's limits for all workers
// and processes through Redis (≤ RateLimit requests per second per account,
// and a shared record of API blocks), rotates the single-use refresh tokens
// under a Postgres row lock (TokenStore), splits batch writes, pages lists,
// retries 429 and transient failures with backoff, and returns typed errors
// (see ErrValidation and its siblings).
package amocrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// MaxRatePerSecond is amoCRM's limit on API requests per second per
// account (and per integration); the Client keeps to it by default and the
// sandbox enforces it.
const MaxRatePerSecond = 7

// Defaults for Config's zero values. The timeouts are the official PHP
// library's.
const (
	DefaultBatchSize      = 50
	MaxBatchSize          = 250
	DefaultPageLimit      = 250
	DefaultMaxRetries     = 4
	DefaultBlockTTL       = time.Hour
	DefaultConnectTimeout = 5 * time.Second
	DefaultRequestTimeout = 20 * time.Second
	DefaultOAuthTimeout   = 15 * time.Second
	DefaultRetryBaseDelay = 500 * time.Millisecond
	DefaultRetryMaxDelay  = 10 * time.Second
	DefaultMaxRetryAfter  = 30 * time.Second
)

// refreshMargin: a token expiring sooner than this is refreshed before a call.
const refreshMargin = time.Minute

// maxBody caps how much of a response is read.
const maxBody = 32 << 20

// Config configures a Client. Redis and Tokens are required; zero values of
// the rest mean the defaults above.
type Config struct {
	ClientID     string
	ClientSecret string
	RedirectURI  string
	// BaseURL, when set, receives every call for every account, including
	// /oauth2/access_token (the sandbox tells accounts apart by their tokens).
	// Otherwise calls go to https://{subdomain}.{domain}.
	BaseURL string
	// BatchSize is the most items per batch write (≤ MaxBatchSize).
	BatchSize int
	// RateLimit is requests per second per account, across every process
	// sharing Redis; 0 means MaxRatePerSecond.
	RateLimit int
	// HTTPClient defaults to a client with a ConnectTimeout dialer.
	HTTPClient *http.Client
	Redis      redis.UniversalClient
	Tokens     TokenStore
	Now        func() time.Time
	Logger     *slog.Logger
	// MaxRetries is how many times a 429 or transient failure is retried.
	// Negative means never.
	MaxRetries     int
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// MaxRetryAfter caps a server-requested wait (Retry-After, retry_after).
	MaxRetryAfter time.Duration
	// BlockTTL is how long an API block stops calls for the account.
	BlockTTL       time.Duration
	ConnectTimeout time.Duration
	RequestTimeout time.Duration
	OAuthTimeout   time.Duration
	// OnBlocked is called once per block (by the process that records it),
	// e.g. to mark the account and alert support. It must not block.
	OnBlocked func(accountID int64, err error)
}

// Client calls amoCRM for any account. It is safe for concurrent use.
type Client struct {
	cfg     Config
	http    *http.Client
	redis   redis.UniversalClient
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	tokens  TokenStore
	now     func() time.Time
	log     *slog.Logger
	base    *url.URL // parsed cfg.BaseURL, nil when unset
}

// New validates cfg and returns a Client. It fails when Redis, Tokens or the
// integration keys are missing, or a limit is out of range.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Redis == nil:
		return nil, errors.New("amocrm: new client: Redis is required")
	case cfg.Tokens == nil:
		return nil, errors.New("amocrm: new client: Tokens is required")
	case cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.RedirectURI == "":
		return nil, errors.New("amocrm: new client: ClientID, ClientSecret and RedirectURI are required")
	case cfg.BatchSize < 0 || cfg.BatchSize > MaxBatchSize:
		return nil, fmt.Errorf("amocrm: new client: BatchSize %d not in 1..%d", cfg.BatchSize, MaxBatchSize)
	case cfg.RateLimit < 0:
		return nil, fmt.Errorf("amocrm: new client: RateLimit %d is negative", cfg.RateLimit)
	}
	setDefault(&cfg.BatchSize, DefaultBatchSize)
	setDefault(&cfg.RateLimit, MaxRatePerSecond)
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	setDefault(&cfg.BlockTTL, DefaultBlockTTL)
	setDefault(&cfg.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	setDefault(&cfg.OAuthTimeout, DefaultOAuthTimeout)
	setDefault(&cfg.RetryBaseDelay, DefaultRetryBaseDelay)
	setDefault(&cfg.RetryMaxDelay, DefaultRetryMaxDelay)
	setDefault(&cfg.MaxRetryAfter, DefaultMaxRetryAfter)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{cfg: cfg, http: cfg.HTTPClient, redis: cfg.Redis, tokens: cfg.Tokens, now: cfg.Now,
		log: cfg.Logger.With("component", "amocrm")}
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = cfg.ConnectTimeout
		c.http = &http.Client{Transport: tr}
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("amocrm: new client: BaseURL %q is not an http(s) URL", cfg.BaseURL)
		}
		c.base = u
	}
	c.limiter = redis_rate.NewLimiter(cfg.Redis)
	// Burst 1 spaces requests evenly instead of letting a burst through, and
	// the period is stretched by 5% so network jitter between our processes
	// and amoCRM cannot squeeze N+1 requests into one of its seconds.
	c.limit = redis_rate.Limit{Rate: cfg.RateLimit, Burst: 1, Period: time.Second * 21 / 20}
	return c, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// AccountRef identifies an account: ID is Svyazka's accounts.id (the key of
// tokens, rate limits and blocks); Subdomain and Domain (amocrm.ru by
// default, amocrm.com or kommo.com) locate its amoCRM host.
type AccountRef struct {
	ID        int64
	Subdomain string
	Domain    string
}

// RefFromReferer parses the referer amoCRM passes to the OAuth redirect
// (e.g. "clinic.amocrm.ru") into an AccountRef with the given id. It fails
// for any host outside amocrm.ru, amocrm.com and kommo.com.
func RefFromReferer(id int64, referer string) (AccountRef, error) {
	host := strings.TrimSpace(referer)
	if u, err := url.Parse(host); err == nil && u.Scheme == "https" && u.User == nil && (u.Path == "" || u.Path == "/") && u.RawQuery == "" {
		host = u.Host // amoCRM sends a bare host; a full https origin names the same account
	}
	sub, domain, err := ParseAccountHost(host)
	if err != nil {
		return AccountRef{}, fmt.Errorf("amocrm: referer %q is not an amoCRM account host", referer)
	}
	return AccountRef{ID: id, Subdomain: sub, Domain: domain}, nil
}

// baseURL is where the account's calls go.
func (c *Client) baseURL(ref AccountRef) (*url.URL, error) {
	if c.base != nil {
		u := *c.base
		return &u, nil
	}
	domain := ref.Domain
	if domain == "" {
		domain = "amocrm.ru"
	}
	if !IsAccountHost(ref.Subdomain + "." + domain) {
		return nil, fmt.Errorf("amocrm: account %d: host %q.%q is not an amoCRM account host", ref.ID, ref.Subdomain, domain)
	}
	return &url.URL{Scheme: "https", Host: ref.Subdomain + "." + domain}, nil
}

// AccountAPI is the REST API v4 of one account. Every method may return, in
// addition to the errors it names, ErrRevoked, ErrUnauthorized,
// ErrPaymentRequired, ErrForbidden, ErrBlocked, ErrRateLimited, ErrTransient,
// ErrMalformed and the context's error.
type AccountAPI struct {
	c   *Client
	ref AccountRef
	// fixed, when set, is the only token used: nothing is read from or
	// written to the token store, and a 401 is final.
	fixed *Token
}

// Account returns the API of the account ref.
func (c *Client) Account(ref AccountRef) *AccountAPI { return &AccountAPI{c: c, ref: ref} }

// AccountWithToken returns the API of ref called with t alone — for the
// install, which reads the account with a freshly exchanged token before the
// account (and so its stored token) exists. It never refreshes t.
func (c *Client) AccountWithToken(ref AccountRef, t Token) *AccountAPI {
	return &AccountAPI{c: c, ref: ref, fixed: &t}
}

// Blocked reports whether calls for the account are refused because of a
// recorded API block.
func (c *Client) Blocked(ctx context.Context, accountID int64) (bool, error) {
	n, err := c.redis.Exists(ctx, blockKey(accountID)).Result()
	if err != nil {
		return false, fmt.Errorf("amocrm: blocked (account %d): %w", accountID, err)
	}
	return n > 0, nil
}

// Unblock removes the account's block record, after amoCRM support lifted
// the block.
func (c *Client) Unblock(ctx context.Context, accountID int64) error {
	if err := c.redis.Del(ctx, blockKey(accountID), recent429Key(accountID)).Err(); err != nil {
		return fmt.Errorf("amocrm: unblock (account %d): %w", accountID, err)
	}
	return nil
}

func blockKey(accountID int64) string     { return "amocrm:blocked:" + strconv.FormatInt(accountID, 10) }
func recent429Key(accountID int64) string { return "amocrm:429:" + strconv.FormatInt(accountID, 10) }
func rateKey(accountID int64) string      { return "amocrm:" + strconv.FormatInt(accountID, 10) }

// recent429Threshold 429s within recent429Window make a JSON 403 count as a
// block (amoCRM blocks after repeated rate-limit violations).
const (
	recent429Threshold = 3
	recent429Window    = time.Minute
)

// gate refuses calls for a blocked account and waits for the account's turn
// in the shared rate limit.
func (c *Client) gate(ctx context.Context, accountID int64, method, path string) error {
	if accountID == 0 {
		return nil
	}
	blocked, err := c.Blocked(ctx, accountID)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTransient, err)
	}
	if blocked {
		return &Error{Kind: ErrBlocked, Method: method, Path: path, Detail: "API access blocked by amoCRM; calls suspended"}
	}
	for {
		res, err := c.limiter.Allow(ctx, rateKey(accountID), c.limit)
		if err != nil {
			return fmt.Errorf("amocrm: rate limiter (account %d): %w: %w", accountID, ErrTransient, err)
		}
		if res.Allowed > 0 {
			return nil
		}
		if err := sleep(ctx, res.RetryAfter); err != nil {
			return err
		}
	}
}

// block records an API block for every process and tells OnBlocked once.
func (c *Client) block(ctx context.Context, accountID int64, cause *Error) error {
	cause.Kind = ErrBlocked
	if accountID == 0 {
		return cause
	}
	first, err := c.redis.SetNX(context.WithoutCancel(ctx), blockKey(accountID), c.now().UTC().Format(time.RFC3339), c.cfg.BlockTTL).Result()
	if err != nil {
		c.log.ErrorContext(ctx, "record API block failed", "account_id", accountID, "err", err)
	}
	c.log.ErrorContext(ctx, "amoCRM blocked API access; calls suspended", "account_id", accountID,
		"status", cause.Status, "path", cause.Path, "ttl", c.cfg.BlockTTL, "first", first)
	if first && c.cfg.OnBlocked != nil {
		c.cfg.OnBlocked(accountID, cause)
	}
	return cause
}

// count429 notes a 429 for the account and returns how many arrived within
// recent429Window.
func (c *Client) count429(ctx context.Context, accountID int64) int64 {
	if accountID == 0 {
		return 0
	}
	key := recent429Key(accountID)
	pipe := c.redis.TxPipeline()
	incr := pipe.Incr(ctx, key)
	pipe.ExpireNX(ctx, key, recent429Window)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0
	}
	return incr.Val()
}

func (c *Client) recent429s(ctx context.Context, accountID int64) int64 {
	if accountID == 0 {
		return 0
	}
	n, _ := c.redis.Get(ctx, recent429Key(accountID)).Int64()
	return n
}

// call is one logical API request.
type call struct {
	method string
	path   string
	query  url.Values
	body   any
	// retryAll: the request is idempotent, so 5xx and timeouts may be
	// retried. Creates are retried only when amoCRM surely did not act
	// (429, 502, 503, connection refused), as a retried create after a lost
	// answer would duplicate contacts or leads.
	retryAll bool
}

// do runs c with token handling, rate limiting and retries, decodes a 2xx
// body into out (unless 204 or out is nil) and returns the status.
func (a *AccountAPI) do(ctx context.Context, cl call, out any) (int, error) {
	c := a.c
	base, err := c.baseURL(a.ref)
	if err != nil {
		return 0, err
	}
	u := base.JoinPath(cl.path)
	u.RawQuery = cl.query.Encode()
	var body []byte
	if cl.body != nil {
		if body, err = json.Marshal(cl.body); err != nil {
			return 0, fmt.Errorf("amocrm: %s %s: encode body: %w", cl.method, cl.path, err)
		}
	}
	var tok Token
	if a.fixed != nil {
		tok = *a.fixed
	} else if tok, err = c.accessToken(ctx, a.ref); err != nil {
		return 0, err
	}
	reauthorized := a.fixed != nil
	sawRateLimit := false
	for attempt := 1; ; attempt++ {
		if err := c.gate(ctx, a.ref.ID, cl.method, cl.path); err != nil {
			return 0, err
		}
		res, err := c.send(ctx, cl.method, u.String(), body, tok.AccessToken, c.cfg.RequestTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("amocrm: %s %s: %w", cl.method, cl.path, ctx.Err())
			}
			e := &Error{Kind: ErrTransient, Method: cl.method, Path: cl.path, Detail: redact(err.Error(), tok.AccessToken, tok.RefreshToken), Attempts: attempt}
			if (cl.retryAll || notSent(err)) && attempt <= c.cfg.MaxRetries {
				if err := c.backoff(ctx, a.ref.ID, e, attempt, 0); err != nil {
					return 0, err
				}
				continue
			}
			return 0, e
		}
		e := classify(res, cl.method, cl.path, tok.AccessToken, tok.RefreshToken)
		if e == nil {
			if res.status == http.StatusNoContent || out == nil {
				return res.status, nil
			}
			if err := decode(res.body, out); err != nil {
				return res.status, &Error{Kind: ErrMalformed, Method: cl.method, Path: cl.path, Status: res.status,
					Detail: err.Error(), RequestID: res.requestID, Attempts: attempt}
			}
			return res.status, nil
		}
		var ae *Error
		if !errors.As(e, &ae) {
			return res.status, e // *ValidationError
		}
		ae.Attempts = attempt
		switch {
		case res.status == http.StatusUnauthorized && !reauthorized:
			// A revoked or rotated-elsewhere access token: refresh once.
			reauthorized = true
			if tok, err = c.refresh(ctx, a.ref, tok.AccessToken); err != nil {
				return 0, err
			}
			attempt--
			continue
		case res.status == http.StatusForbidden:
			if res.html || sawRateLimit || c.recent429s(ctx, a.ref.ID) >= recent429Threshold {
				return res.status, c.block(ctx, a.ref.ID, ae)
			}
			return res.status, ae
		case res.status == http.StatusTooManyRequests:
			sawRateLimit = true
			c.count429(ctx, a.ref.ID)
			if attempt <= c.cfg.MaxRetries {
				if err := c.backoff(ctx, a.ref.ID, ae, attempt, res.retryAfter); err != nil {
					return 0, err
				}
				continue
			}
			return res.status, ae
		case errors.Is(ae, ErrTransient):
			safe := res.status == http.StatusBadGateway || res.status == http.StatusServiceUnavailable
			if (cl.retryAll || safe) && attempt <= c.cfg.MaxRetries {
				if err := c.backoff(ctx, a.ref.ID, ae, attempt, res.retryAfter); err != nil {
					return 0, err
				}
				continue
			}
			return res.status, ae
		}
		return res.status, ae
	}
}

// backoff sleeps before retry number attempt: the server's wait when it
// named one (capped), else exponential with equal jitter.
func (c *Client) backoff(ctx context.Context, accountID int64, cause *Error, attempt int, retryAfter time.Duration) error {
	delay := c.cfg.RetryBaseDelay << min(attempt-1, 20)
	delay = min(delay, c.cfg.RetryMaxDelay)
	delay = delay/2 + rand.N(delay/2+1)
	if retryAfter > 0 {
		delay = min(retryAfter, c.cfg.MaxRetryAfter)
	}
	c.log.WarnContext(ctx, "amoCRM call failed; retrying", "account_id", accountID, "method", cause.Method,
		"path", cause.Path, "status", cause.Status, "attempt", attempt, "delay", delay, "err", cause.Kind)
	return sleep(ctx, delay)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// response is a fully read HTTP answer.
type response struct {
	status     int
	body       []byte
	html       bool
	requestID  string
	retryAfter time.Duration
}

// send makes one HTTP request with its own timeout and reads the answer.
func (c *Client) send(ctx context.Context, method, rawURL string, body []byte, accessToken string, timeout time.Duration) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "svyazka-amocrm/1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("response body larger than %d bytes", maxBody)
	}
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	trimmed := bytes.TrimSpace(data)
	res := &response{
		status:    resp.StatusCode,
		body:      data,
		html:      strings.Contains(ct, "html") || (len(trimmed) > 0 && trimmed[0] == '<'),
		requestID: resp.Header.Get("X-Request-Id"),
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 {
			res.retryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			res.retryAfter = t.Sub(c.now())
		}
	}
	return res, nil
}

// notSent reports whether err happened before the request reached amoCRM,
// so retrying even a create cannot duplicate anything.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// problem is amoCRM's problem+json error body.
type problem struct {
	Title            string       `json:"title"`
	Detail           string       `json:"detail"`
	Hint             string       `json:"hint"`
	Status           int          `json:"status"`
	RetryAfter       float64      `json:"retry_after"`
	ValidationErrors []ItemErrors `json:"validation-errors"`
}

// classify turns a non-2xx answer into a typed error; nil for 2xx. Token
// values are scrubbed from anything copied from the body.
func classify(res *response, method, path string, secrets ...string) error {
	if res.status >= 200 && res.status < 300 {
		return nil
	}
	var p problem
	if !res.html && len(bytes.TrimSpace(res.body)) > 0 {
		_ = json.Unmarshal(res.body, &p) // a body that is not problem+json keeps the zero problem
	}
	if p.RetryAfter > 0 && res.retryAfter == 0 {
		res.retryAfter = time.Duration(p.RetryAfter * float64(time.Second))
	}
	detail := redact(firstNonEmpty(p.Detail, p.Hint), secrets...)
	title := redact(p.Title, secrets...)
	if res.status == http.StatusBadRequest || res.status == http.StatusUnprocessableEntity {
		return &ValidationError{Method: method, Path: path, Status: res.status, Title: title, Detail: detail, Items: p.ValidationErrors}
	}
	e := &Error{Method: method, Path: path, Status: res.status, Title: title, Detail: detail, RequestID: res.requestID}
	switch {
	case res.status == http.StatusUnauthorized:
		e.Kind = ErrUnauthorized
	case res.status == http.StatusPaymentRequired:
		e.Kind = ErrPaymentRequired
	case res.status == http.StatusForbidden:
		e.Kind = ErrForbidden
		if res.html {
			e.Detail = "HTML 403 page (API block)"
		}
	case res.status == http.StatusNotFound:
		e.Kind = ErrNotFound
	case res.status == http.StatusTooManyRequests:
		e.Kind = ErrRateLimited
	case res.status == http.StatusRequestTimeout || res.status >= 500:
		e.Kind = ErrTransient
	default:
		e.Kind = ErrMalformed
		e.Detail = "unexpected status " + strconv.Itoa(res.status)
	}
	return e
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// redact removes the token values from s: error strings end up in logs.
func redact(s string, secrets ...string) string {
	for _, secret := range secrets {
		if len(secret) >= 8 {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}

// decode unmarshals a JSON body, rejecting an empty or non-JSON one.
func decode(body []byte, out any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("empty body")
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}
