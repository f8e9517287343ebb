package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/config"
)

func env(vars map[string]string) config.Lookup {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// dev is env with APP_ENV=development unless vars set it.
func dev(vars map[string]string) config.Lookup {
	all := map[string]string{"APP_ENV": "development"}
	for k, v := range vars {
		all[k] = v
	}
	return env(all)
}

const prodKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func TestDefaultIsProduction(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env(nil))
	require.ErrorContains(t, err, "ENCRYPTION_KEY: is required in production", "no environment means production: the public development key is never used by default")
	c, err := config.Load(env(map[string]string{"ENCRYPTION_KEY": prodKey, "AMOCRM_CLIENT_SECRET": "real-secret"}))
	require.NoError(t, err)
	require.Equal(t, "production", c.Env)
	require.Empty(t, c.QueueUIAddr, "the queue UI is off by default")
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(dev(nil))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	require.Equal(t, "http://127.0.0.1:8080", c.PublicURL)
	require.Equal(t, "http://127.0.0.1:8080/oauth/amocrm/callback", c.AmoRedirectURI)
	require.Equal(t, 50, c.AmoBatchSize)
	require.Equal(t, 14, c.TrialDays)
	require.Len(t, c.EncryptionKeyBytes(), 32)
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		vars    map[string]string
		wantVar string
	}{
		"MalformedDatabaseURL":    {map[string]string{"DATABASE_URL": "postgres//oops"}, "DATABASE_URL"},
		"WrongSchemeDatabase":     {map[string]string{"DATABASE_URL": "mysql://root@localhost/db"}, "DATABASE_URL"},
		"ShortEncryptionKey":      {map[string]string{"ENCRYPTION_KEY": "c2hvcnQ="}, "ENCRYPTION_KEY"},
		"NotBase64Key":            {map[string]string{"ENCRYPTION_KEY": "!!!"}, "ENCRYPTION_KEY"},
		"ProductionNoKey":         {map[string]string{"APP_ENV": "production"}, "ENCRYPTION_KEY"},
		"BatchTooBig":             {map[string]string{"AMOCRM_BATCH_SIZE": "251"}, "AMOCRM_BATCH_SIZE"},
		"RateAboveAmo":            {map[string]string{"AMOCRM_RATE_LIMIT": "8"}, "AMOCRM_RATE_LIMIT"},
		"NotANumber":              {map[string]string{"TRIAL_DAYS": "two weeks"}, "TRIAL_DAYS"},
		"BadDuration":             {map[string]string{"SHUTDOWN_TIMEOUT": "5 minutes"}, "SHUTDOWN_TIMEOUT"},
		"BadAddr":                 {map[string]string{"HTTP_ADDR": "8080"}, "HTTP_ADDR"},
		"BadSentinel":             {map[string]string{"REDIS_SENTINEL_ADDRS": "a:1,b"}, "REDIS_SENTINEL_ADDRS"},
		"ProductionDefaultSecret": {map[string]string{"APP_ENV": "production", "ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}, "AMOCRM_CLIENT_SECRET"},
		"BadEnv":                  {map[string]string{"APP_ENV": "staging"}, "APP_ENV"},
		"QueueUIPublic":           {map[string]string{"QUEUE_UI_ADDR": "0.0.0.0:8081"}, "QUEUE_UI_ADDR"},
		"QueueUIHostname":         {map[string]string{"QUEUE_UI_ADDR": "localhost:8081"}, "QUEUE_UI_ADDR"},
		"BadProxyCIDR":            {map[string]string{"HTTP_TRUSTED_PROXIES": "10.0.0.0/33"}, "HTTP_TRUSTED_PROXIES"},
		"BadTimeZone":             {map[string]string{"DEFAULT_TIME_ZONE": "Mars/Olympus"}, "DEFAULT_TIME_ZONE"},
		"NoDatabasesAllowed":      {map[string]string{"MAX_DATABASES_PER_ACCOUNT": "0"}, "MAX_DATABASES_PER_ACCOUNT"},
		"RelayTooFast":            {map[string]string{"OUTBOX_RELAY_INTERVAL": "10ms"}, "OUTBOX_RELAY_INTERVAL"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(dev(tc.vars))
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tc.wantVar+": "), "error %q must name %s", err, tc.wantVar)
			require.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestSettingsMasksSecrets(t *testing.T) {
	t.Parallel()
	c, err := config.Load(dev(map[string]string{
		"DATABASE_URL":         "postgres://svz:topsecret@db:5432/svyazka?sslmode=require&password=querysecret&application_name=svz",
		"REDIS_URL":            "redis://cache:6379/0?password=redissecret",
		"AMOCRM_CLIENT_SECRET": "amo-secret",
		"STRIPE_SECRET_KEY":    "sk_test_123",
	}))
	require.NoError(t, err)
	var printed strings.Builder
	for _, s := range c.Settings() {
		printed.WriteString(s.Env + "=" + s.Value + "\n")
	}
	out := printed.String()
	for _, secret := range []string{"topsecret", "querysecret", "redissecret", "amo-secret", "sk_test_123", c.EncryptionKey} {
		require.NotContains(t, out, secret)
	}
	require.Contains(t, out, "DATABASE_URL=postgres://svz:xxxxx@db:5432/svyazka?")
	require.Contains(t, out, "application_name=svz", "harmless parameters stay readable")
	require.Contains(t, out, "HTTP_ADDR=127.0.0.1:8080")
}

// TestREADMEDocumentsEverySetting keeps the README's configuration table in
// step with the Config struct.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	c, err := config.Load(dev(nil))
	require.NoError(t, err)
	for _, s := range c.Settings() {
		require.Contains(t, string(readme), "| `"+s.Env+"` |", "README.md configuration table lacks %s", s.Env)
	}
}
