package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/jobs"
)

// TestAdminSetup runs `svyazka admin setup` against an in-process sandbox
// (AMOCRM_BASE_URL) for an account installed the way the service does it.
func TestAdminSetup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const key = "YWRtaW4tY29tbWFuZHMtdGVzdC1rZXktMzItYnl0ZXM="
	const secret = "a-real-looking-secret"
	const redirect = "https://svyazka.test/oauth/amocrm/callback"
	sb, err := sandbox.New(sandbox.Config{ClientID: "client-id", ClientSecret: secret, RedirectURI: redirect,
		HTTPClient: &http.Client{Timeout: time.Second}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	ropts := redistest.New(t)
	dbURL := storetest.NewURL(t)
	env := map[string]string{
		"APP_ENV": "production", "DATABASE_URL": dbURL, "REDIS_URL": fmt.Sprintf("redis://%s/%d", ropts.Addr, ropts.DB),
		"ENCRYPTION_KEY": key, "AMOCRM_CLIENT_ID": "client-id", "AMOCRM_CLIENT_SECRET": secret,
		"AMOCRM_REDIRECT_URI": redirect, "AMOCRM_BASE_URL": srv.URL,
	}
	run := func(args ...string) (stdout, stderr string, code int) {
		cmd := command(env, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), exitCode(err)
	}
	_, stderr, code := run("migrate", "up")
	require.Equal(t, 0, code, stderr)

	// Install the account as the service would: its token sealed with ENCRYPTION_KEY.
	db, err := store.Open(ctx, dbURL, store.Options{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	raw, err := base64.StdEncoding.DecodeString(key)
	require.NoError(t, err)
	seal, err := sealer.New(raw)
	require.NoError(t, err)
	tokens, err := store.NewAmoTokens(db, seal)
	require.NoError(t, err)
	queue := asynq.NewClient(asynq.RedisClientOpt{Addr: ropts.Addr, DB: ropts.DB})
	t.Cleanup(func() { _ = queue.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := &install.Service{Store: db, Sealer: seal, TrialDays: 14, TimeZone: "Europe/Moscow", Now: time.Now,
		Log: log, Relay: &jobs.OutboxRelay{Store: db, Client: queue, Log: log}, IsRevoked: install.IsRevoked}
	client, err := amocrm.New(amocrm.Config{ClientID: "client-id", ClientSecret: secret, RedirectURI: redirect,
		BaseURL: srv.URL, Redis: redistest.Client(t), Tokens: install.RevokingTokens{AmoTokens: tokens, Service: svc}})
	require.NoError(t, err)
	svc.Exchanger = install.AmoExchanger{Client: client, Tokens: tokens}
	info, err := sb.CreateAccount(sandbox.AccountOptions{Subdomain: "setup-clinic"})
	require.NoError(t, err)
	require.NoError(t, svc.BeginInstall(ctx, info.Code, "setup-clinic.amocrm.ru", true))
	var payload []byte
	require.NoError(t, db.SQL().QueryRow(`SELECT payload FROM outbox WHERE task_type = $1`, jobs.TypeInstallComplete).Scan(&payload))
	require.NoError(t, svc.ProcessTask(ctx, asynq.NewTask(jobs.TypeInstallComplete, payload)))

	status := func() map[string]any {
		stdout, stderr, code := run("admin", "status", "setup-clinic")
		require.Equal(t, 0, code, stderr)
		var st map[string]any
		require.NoError(t, json.Unmarshal([]byte(stdout), &st))
		return st
	}
	require.Equal(t, "not_configured", status()["setup"])

	t.Run("PipelinesOnly", func(t *testing.T) {
		stdout, stderr, code := run("admin", "setup", "setup-clinic", "--blocks", "pipelines")
		require.Equal(t, 1, code, stderr)
		require.Contains(t, stdout, "created  pipeline:primary")
		require.Contains(t, stdout, "created  stage:repeat:cancelled")
		require.NotContains(t, stdout, "field:")
		require.True(t, strings.HasPrefix(stderr, "svyazka: admin setup: autosetup finished, but account setup-clinic is not_configured: "), stderr)
		require.Contains(t, stderr, "«ID записи IDENT»", "names what is missing")
		require.Equal(t, 1, strings.Count(stderr, "\n"))
	})

	t.Run("All", func(t *testing.T) {
		stdout, stderr, code := run("admin", "setup", "setup-clinic")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "reused   pipeline:primary", "the pipelines made before are reused")
		require.Contains(t, stdout, "created  field:lead:reception_id")
		require.Contains(t, stdout, "reused   field:contact:phone")
		require.Contains(t, lastLine(stdout), "account setup-clinic is configured")
		require.Equal(t, "configured", status()["setup"])
	})

	t.Run("FailureNamesTheItem", func(t *testing.T) {
		_, err := db.SQL().Exec(`UPDATE account_settings SET sync_state = 'running'`)
		require.NoError(t, err)
		stdout, stderr, code := run("admin", "setup", "setup-clinic")
		require.Equal(t, 1, code, stdout)
		require.Equal(t, "svyazka: admin setup: Остановите синхронизацию, чтобы выполнить автонастройку\n", stderr)
	})

	t.Run("Usage", func(t *testing.T) {
		_, stderr, code := run("admin", "setup", "setup-clinic", "--blocks", "pipelines,billing")
		require.Equal(t, 2, code)
		require.Contains(t, stderr, `unknown block "billing"`)
	})
}
