// Package config reads Svyazka's configuration from environment variables
// into one struct, applies local defaults, validates it and prints it with
// secrets masked. Nothing below main reads the environment.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/sealer"
)

// devEncryptionKey is used only when APP_ENV=development and ENCRYPTION_KEY is
// unset, so `make run` works out of the box. APP_ENV defaults to production,
// which refuses to start without a key of its own; only `svyazka run` (the
// laptop demo) and tests choose development.
const devEncryptionKey = "c3Z5YXprYS1kZXZlbG9wbWVudC1rZXktMzItYnl0ZXM="

// defaultClientSecret pairs with the local amoCRM sandbox only.
const defaultClientSecret = "svyazka-local-client-secret"

// Config is the whole runtime configuration. Field tags: env names the
// variable, def its default, secret ("true" or "url") how it is masked when
// printed, desc the one-line description shown in the README table.
type Config struct {
	Env      string `env:"APP_ENV" def:"production" desc:"production (real secrets required) or development (a public demo key; 'svyazka run' defaults to it)"`
	LogLevel string `env:"LOG_LEVEL" def:"info" desc:"debug, info, warn or error"`

	DatabaseURL         string   `env:"DATABASE_URL" def:"postgres://postgres@127.0.0.1:5432/svyazka?sslmode=disable" secret:"url" desc:"PostgreSQL connection URL"`
	DatabaseMaxConns    int      `env:"DATABASE_MAX_CONNS" def:"20" desc:"connection pool size per process"`
	RedisURL            string   `env:"REDIS_URL" def:"redis://127.0.0.1:6379/0" secret:"url" desc:"Redis URL (used when no Sentinel is set)"`
	RedisSentinelAddrs  []string `env:"REDIS_SENTINEL_ADDRS" desc:"comma-separated Sentinel host:port list; enables failover mode"`
	RedisSentinelMaster string   `env:"REDIS_SENTINEL_MASTER" def:"mymaster" desc:"Sentinel master name"`
	RedisSentinelPass   string   `env:"REDIS_SENTINEL_PASSWORD" secret:"true" desc:"Sentinel password"`

	HTTPAddr        string        `env:"HTTP_ADDR" def:"127.0.0.1:8080" desc:"address the API listens on"`
	TrustedProxies  []string      `env:"HTTP_TRUSTED_PROXIES" desc:"comma-separated CIDRs of load balancers whose X-Forwarded-For is believed (none: the TCP peer is the client)"`
	QueueUIAddr     string        `env:"QUEUE_UI_ADDR" desc:"loopback host:port for the asynq queue UI (off when empty; it can delete tasks and has no login)"`
	PublicURL       string        `env:"PUBLIC_URL" desc:"external base URL of the API (default http://HTTP_ADDR)"`
	MaxBodyBytes    int64         `env:"HTTP_MAX_BODY_BYTES" def:"10485760" desc:"largest accepted request body"`
	RequestTimeout  time.Duration `env:"HTTP_REQUEST_TIMEOUT" def:"30s" desc:"per-request handler timeout"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" def:"25s" desc:"grace period for in-flight requests and tasks"`

	EncryptionKey string `env:"ENCRYPTION_KEY" secret:"true" desc:"32 random bytes, base64 (openssl rand -base64 32); encrypts tokens at rest"`

	AmoClientID     string `env:"AMOCRM_CLIENT_ID" def:"00000000-0000-4000-8000-000000000001" desc:"integration id (UUID) of the amoCRM widget"`
	AmoClientSecret string `env:"AMOCRM_CLIENT_SECRET" def:"svyazka-local-client-secret" secret:"true" desc:"integration secret; also signs widget tokens"`
	AmoRedirectURI  string `env:"AMOCRM_REDIRECT_URI" desc:"OAuth redirect URI (default PUBLIC_URL/oauth/amocrm/callback)"`
	AmoBaseURL      string `env:"AMOCRM_BASE_URL" desc:"overrides every account's amoCRM host (the sandbox), e.g. http://127.0.0.1:8090"`
	AmoBatchSize    int    `env:"AMOCRM_BATCH_SIZE" def:"50" desc:"entities per amoCRM write request (1..250)"`
	AmoRateLimit    int    `env:"AMOCRM_RATE_LIMIT" def:"7" desc:"amoCRM requests per second per account, shared by all processes"`

	StripeSecretKey     string `env:"STRIPE_SECRET_KEY" secret:"true" desc:"Stripe API key"`
	StripeWebhookSecret string `env:"STRIPE_WEBHOOK_SECRET" secret:"true" desc:"Stripe webhook signing secret (whsec_...)"`
	StripeAPIURL        string `env:"STRIPE_API_URL" desc:"overrides the Stripe API base URL (stripe-mock in tests)"`

	TrialDays         int           `env:"TRIAL_DAYS" def:"14" desc:"length of the free trial after install"`
	WorkerConcurrency int           `env:"WORKER_CONCURRENCY" def:"10" desc:"tasks one worker process runs at once"`
	RelayInterval     time.Duration `env:"OUTBOX_RELAY_INTERVAL" def:"10s" desc:"safety-net poll of the outbox (commits wake the relay at once)"`
	DefaultTimeZone   string        `env:"DEFAULT_TIME_ZONE" def:"Europe/Moscow" desc:"IANA zone of a new account and clinic database"`
	MaxDatabases      int           `env:"MAX_DATABASES_PER_ACCOUNT" def:"20" desc:"clinic databases one account may connect"`

	SandboxAddr string `env:"SANDBOX_ADDR" def:"127.0.0.1:8090" desc:"where 'svyazka run' starts the amoCRM sandbox"`
}

// Lookup returns an environment variable and whether it is set (os.LookupEnv).
type Lookup func(key string) (string, bool)

// Load reads the configuration through lookup, applies defaults and derived
// values, and validates it. The error names the offending variable.
func Load(lookup Lookup) (Config, error) {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		raw, ok := lookup(f.Tag.Get("env"))
		if !ok || strings.TrimSpace(raw) == "" {
			raw = f.Tag.Get("def")
		}
		if err := setField(v.Field(i), strings.TrimSpace(raw)); err != nil {
			return Config{}, fmt.Errorf("%s: %w", f.Tag.Get("env"), err)
		}
	}
	c.derive()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func setField(field reflect.Value, raw string) error {
	switch field.Interface().(type) {
	case string:
		field.SetString(raw)
	case int, int64:
		if raw == "" {
			return nil
		}
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		field.SetInt(n)
	case time.Duration:
		if raw == "" {
			return nil
		}
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 30s or 5m", raw)
		}
		field.SetInt(int64(d))
	case []string:
		var items []string
		for _, item := range strings.Split(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		field.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported config type %s", field.Type())
	}
	return nil
}

func (c *Config) derive() {
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.HTTPAddr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.AmoRedirectURI == "" {
		c.AmoRedirectURI = c.PublicURL + "/oauth/amocrm/callback"
	}
	if c.EncryptionKey == "" && c.Env == "development" {
		c.EncryptionKey = devEncryptionKey
	}
}

// Validate checks every field; the first problem is returned as
// "VARIABLE: reason".
func (c Config) Validate() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	}
	if c.Env != "development" && c.Env != "production" {
		return bad("APP_ENV", "must be development or production, got %q", c.Env)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if err := checkURL(c.DatabaseURL, "postgres", "postgresql"); err != nil {
		return bad("DATABASE_URL", "%v", err)
	}
	if c.DatabaseMaxConns < 1 {
		return bad("DATABASE_MAX_CONNS", "must be at least 1")
	}
	if len(c.RedisSentinelAddrs) == 0 {
		if err := checkURL(c.RedisURL, "redis", "rediss"); err != nil {
			return bad("REDIS_URL", "%v", err)
		}
	}
	for _, addr := range c.RedisSentinelAddrs {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad("REDIS_SENTINEL_ADDRS", "%q is not host:port", addr)
		}
	}
	for name, addr := range map[string]string{"HTTP_ADDR": c.HTTPAddr, "SANDBOX_ADDR": c.SandboxAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad(name, "%q is not host:port", addr)
		}
	}
	for name, u := range map[string]string{"PUBLIC_URL": c.PublicURL, "AMOCRM_REDIRECT_URI": c.AmoRedirectURI} {
		if err := checkURL(u, "http", "https"); err != nil {
			return bad(name, "%v", err)
		}
	}
	if c.AmoBaseURL != "" {
		if err := checkURL(c.AmoBaseURL, "http", "https"); err != nil {
			return bad("AMOCRM_BASE_URL", "%v", err)
		}
	}
	if c.StripeAPIURL != "" {
		if err := checkURL(c.StripeAPIURL, "http", "https"); err != nil {
			return bad("STRIPE_API_URL", "%v", err)
		}
	}
	if c.MaxBodyBytes < 1024 {
		return bad("HTTP_MAX_BODY_BYTES", "must be at least 1024")
	}
	if c.RequestTimeout <= 0 {
		return bad("HTTP_REQUEST_TIMEOUT", "must be positive")
	}
	if c.ShutdownTimeout <= 0 {
		return bad("SHUTDOWN_TIMEOUT", "must be positive")
	}
	if c.EncryptionKey == "" {
		return bad("ENCRYPTION_KEY", "is required in production (generate one with: openssl rand -base64 32)")
	}
	if _, err := sealer.ParseKey(c.EncryptionKey); err != nil {
		return bad("ENCRYPTION_KEY", "%v", err)
	}
	if c.Env == "production" && c.EncryptionKey == devEncryptionKey {
		return bad("ENCRYPTION_KEY", "the development key must not be used in production")
	}
	if c.AmoClientID == "" {
		return bad("AMOCRM_CLIENT_ID", "is required")
	}
	if c.AmoClientSecret == "" {
		return bad("AMOCRM_CLIENT_SECRET", "is required")
	}
	if c.Env == "production" && c.AmoClientSecret == defaultClientSecret {
		return bad("AMOCRM_CLIENT_SECRET", "must be the integration's real secret in production")
	}
	if c.AmoBatchSize < 1 || c.AmoBatchSize > 250 {
		return bad("AMOCRM_BATCH_SIZE", "must be between 1 and 250, got %d", c.AmoBatchSize)
	}
	if c.AmoRateLimit < 1 || c.AmoRateLimit > amocrm.MaxRatePerSecond {
		return bad("AMOCRM_RATE_LIMIT", "must be between 1 and %d (amoCRM's limit), got %d", amocrm.MaxRatePerSecond, c.AmoRateLimit)
	}
	if c.TrialDays < 0 || c.TrialDays > 365 {
		return bad("TRIAL_DAYS", "must be between 0 and 365, got %d", c.TrialDays)
	}
	if c.WorkerConcurrency < 1 {
		return bad("WORKER_CONCURRENCY", "must be at least 1")
	}
	if c.RelayInterval < time.Second {
		return bad("OUTBOX_RELAY_INTERVAL", "must be at least 1s")
	}
	if _, err := time.LoadLocation(c.DefaultTimeZone); err != nil || c.DefaultTimeZone == "" || c.DefaultTimeZone == "Local" {
		return bad("DEFAULT_TIME_ZONE", "%q is not an IANA time zone such as Europe/Moscow", c.DefaultTimeZone)
	}
	if c.MaxDatabases < 1 || c.MaxDatabases > 1000 {
		return bad("MAX_DATABASES_PER_ACCOUNT", "must be between 1 and 1000, got %d", c.MaxDatabases)
	}
	if _, err := c.TrustedProxyNets(); err != nil {
		return bad("HTTP_TRUSTED_PROXIES", "%v", err)
	}
	if c.QueueUIAddr != "" {
		host, _, err := net.SplitHostPort(c.QueueUIAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return bad("QUEUE_UI_ADDR", "must be a loopback address such as 127.0.0.1:8081 (the queue UI has no login), got %q", c.QueueUIAddr)
		}
	}
	return nil
}

func checkURL(raw string, schemes ...string) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a valid URL: %v", strings.TrimPrefix(err.Error(), "parse "))
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Host == "" {
				return fmt.Errorf("has no host: %q", Mask(raw, "url"))
			}
			return nil
		}
	}
	return fmt.Errorf("must start with %s://, got %q", schemes[0], Mask(raw, "url"))
}

// TrustedProxyNets parses HTTP_TRUSTED_PROXIES (a bare IP is a /32 or /128).
func (c Config) TrustedProxyNets() ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, raw := range c.TrustedProxies {
		if !strings.Contains(raw, "/") {
			if ip := net.ParseIP(raw); ip != nil && ip.To4() != nil {
				raw += "/32"
			} else {
				raw += "/128"
			}
		}
		_, n, err := net.ParseCIDR(raw)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", raw)
		}
		out = append(out, n)
	}
	return out, nil
}

// EncryptionKeyBytes returns the decoded ENCRYPTION_KEY (validated by Load).
func (c Config) EncryptionKeyBytes() []byte {
	key, _ := sealer.ParseKey(c.EncryptionKey)
	return key
}

// Setting is one configuration entry as printed at start and documented.
type Setting struct {
	Env, Value, Default, Description string
}

// Settings lists every variable with its current value, secrets masked.
func (c Config) Settings() []Setting {
	v := reflect.ValueOf(c)
	out := make([]Setting, 0, v.NumField())
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		out = append(out, Setting{
			Env:         f.Tag.Get("env"),
			Value:       Mask(format(v.Field(i)), f.Tag.Get("secret")),
			Default:     f.Tag.Get("def"),
			Description: f.Tag.Get("desc"),
		})
	}
	return out
}

// secretParam reports whether a URL query parameter carries a secret
// (password=, sslpassword=, token=, …).
func secretParam(key string) bool {
	k := strings.ToLower(key)
	for _, word := range []string{"pass", "secret", "token", "key", "auth", "credential"} {
		if strings.Contains(k, word) {
			return true
		}
	}
	return false
}

func format(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case []string:
		return strings.Join(x, ",")
	default:
		return fmt.Sprint(x)
	}
}

// Mask hides a secret value: "true" hides it whole, "url" hides only the
// password in a URL's user info.
func Mask(value, kind string) string {
	switch {
	case value == "":
		return ""
	case kind == "true":
		return "******"
	case kind == "url":
		u, err := url.Parse(value)
		if err != nil {
			return "******"
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		if u.RawQuery != "" {
			q := u.Query()
			for key := range q {
				if secretParam(key) {
					q.Set(key, "xxxxx")
				}
			}
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return value
}
