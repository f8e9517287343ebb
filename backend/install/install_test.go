package install_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/jobs"
)

type env struct {
	sb      *sandbox.Sandbox
	db      *store.DB
	client  *amocrm.Client
	service *install.Service
	now     time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	sb, err := sandbox.New(sandbox.Config{ClientID: "client-id", ClientSecret: "client-secret",
		RedirectURI: "https://svyazka.test/oauth/amocrm/callback", HTTPClient: &http.Client{Timeout: time.Second}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)

	e := &env{sb: sb, db: storetest.New(t), now: time.Now().UTC()}
	seal, err := sealer.New(make([]byte, 32))
	require.NoError(t, err)
	tokens, err := store.NewAmoTokens(e.db, seal)
	require.NoError(t, err)
	ropts := redistest.New(t)
	queue := asynq.NewClient(asynq.RedisClientOpt{Addr: ropts.Addr, DB: ropts.DB})
	t.Cleanup(func() { _ = queue.Close() })
	rdb := redistest.Client(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.service = &install.Service{Store: e.db, Sealer: seal, TrialDays: 14, TimeZone: "Asia/Yekaterinburg", Now: func() time.Time { return e.now },
		Log: log, Relay: &jobs.OutboxRelay{Store: e.db, Client: queue, Log: log}, IsRevoked: install.IsRevoked}
	e.client, err = amocrm.New(amocrm.Config{ClientID: "client-id", ClientSecret: "client-secret",
		RedirectURI: "https://svyazka.test/oauth/amocrm/callback", BaseURL: srv.URL, Redis: rdb,
		Tokens: install.RevokingTokens{AmoTokens: tokens, Service: e.service}})
	require.NoError(t, err)
	e.service.Exchanger = install.AmoExchanger{Client: e.client, Tokens: tokens}
	return e
}

// redirect does what our OAuth callback does and returns the recorded task.
func (e *env) redirect(t *testing.T, code, referer string) *asynq.Task {
	t.Helper()
	require.NoError(t, e.service.BeginInstall(context.Background(), code, referer, true))
	var payload []byte
	require.NoError(t, e.db.SQL().QueryRow(`SELECT payload FROM outbox WHERE task_type = $1 ORDER BY id DESC LIMIT 1`, jobs.TypeInstallComplete).Scan(&payload))
	require.NotContains(t, string(payload), code, "the code is sealed at rest")
	return asynq.NewTask(jobs.TypeInstallComplete, payload)
}

// disableHook does what our disable-hook route does and returns the task.
func (e *env) disableHook(t *testing.T, amoID int64) *asynq.Task {
	t.Helper()
	require.NoError(t, e.service.BeginDisable(context.Background(), amoID))
	var payload []byte
	require.NoError(t, e.db.SQL().QueryRow(`SELECT payload FROM outbox WHERE task_type = $1 ORDER BY id DESC LIMIT 1`, jobs.TypeInstallConfirmDisable).Scan(&payload))
	return asynq.NewTask(jobs.TypeInstallConfirmDisable, payload)
}

func TestInstallLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	info, err := e.sb.CreateAccount(sandbox.AccountOptions{Subdomain: "smile", Name: "Улыбка", Users: 3})
	require.NoError(t, err)

	task := e.redirect(t, info.Code, "smile.amocrm.ru")
	require.NoError(t, e.service.ProcessTask(ctx, task))
	acc, err := e.db.AccountByAmoID(ctx, info.AccountID)
	require.NoError(t, err)
	require.Equal(t, store.AccountActive, acc.Status)
	require.Equal(t, "smile", acc.Subdomain)
	require.Equal(t, "Asia/Yekaterinburg", acc.Timezone, "new accounts take the configured zone")
	sub, err := e.db.Subscription(ctx, acc.ID)
	require.NoError(t, err)
	require.Equal(t, e.now.AddDate(0, 0, 14).Truncate(time.Second), sub.TrialEndsAt.UTC().Truncate(time.Second))

	api := e.client.Account(amocrm.AccountRef{ID: acc.ID, Subdomain: acc.Subdomain, Domain: acc.BaseDomain})
	got, err := api.GetAccount(ctx)
	require.NoError(t, err, "the stored token works")
	require.Equal(t, info.AccountID, got.ID)

	t.Run("DuplicateTaskIsPermanentFailure", func(t *testing.T) {
		err := e.service.ProcessTask(ctx, task)
		require.ErrorIs(t, err, asynq.SkipRetry, "a used code never becomes valid")
		var n int
		require.NoError(t, e.db.SQL().QueryRow(`SELECT count(*) FROM accounts`).Scan(&n))
		require.Equal(t, 1, n)
	})

	t.Run("StaleDisableHookChangesNothing", func(t *testing.T) {
		// amoCRM still accepts our token: the hook is a replay.
		require.NoError(t, e.service.ConfirmDisable(ctx, e.disableHook(t, info.AccountID)))
		got, err := e.db.AccountByID(ctx, acc.ID)
		require.NoError(t, err)
		require.Equal(t, store.AccountActive, got.Status)
		evs, _, err := e.db.ListEvents(ctx, eventlog.Filter{AccountID: acc.ID, Types: []eventlog.Type{eventlog.TypeUninstall}})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		require.Contains(t, evs[0].Message, "виджет не отключён")
	})

	t.Run("RevokedAccessUninstalls", func(t *testing.T) {
		_, err := e.sb.Uninstall(ctx, info.AccountID) // no disable hook configured: only the 401 tells us
		require.NoError(t, err)
		_, err = api.GetAccount(ctx)
		require.ErrorIs(t, err, amocrm.ErrRevoked)
		acc, err := e.db.AccountByID(ctx, acc.ID)
		require.NoError(t, err)
		require.Equal(t, store.AccountUninstalled, acc.Status)
		evs, _, err := e.db.ListEvents(ctx, eventlog.Filter{AccountID: acc.ID, Types: []eventlog.Type{eventlog.TypeUninstall}})
		require.NoError(t, err)
		require.Len(t, evs, 2, "the stale hook's warning, then the uninstall")
		require.Contains(t, evs[0].Message, "401")
	})

	t.Run("ReinstallKeepsTheAccount", func(t *testing.T) {
		code, err := e.sb.IssueCode(info.AccountID)
		require.NoError(t, err)
		require.NoError(t, e.service.ProcessTask(ctx, e.redirect(t, code, "smile.amocrm.ru")))
		again, err := e.db.AccountByAmoID(ctx, info.AccountID)
		require.NoError(t, err)
		require.Equal(t, acc.ID, again.ID)
		require.Equal(t, store.AccountActive, again.Status)
		_, err = api.GetAccount(ctx)
		require.NoError(t, err, "the new token replaced the revoked one")
		require.Greater(t, again.InstallSeq, acc.InstallSeq, "a reinstall starts a new generation")
	})

	t.Run("ConfirmedDisableUninstalls", func(t *testing.T) {
		_, err := e.sb.Uninstall(ctx, info.AccountID) // amoCRM revokes our tokens, then calls the hook
		require.NoError(t, err)
		require.NoError(t, e.service.ConfirmDisable(ctx, e.disableHook(t, info.AccountID)))
		got, err := e.db.AccountByID(ctx, acc.ID)
		require.NoError(t, err)
		require.Equal(t, store.AccountUninstalled, got.Status)
		require.NoError(t, e.service.ConfirmDisable(ctx, e.disableHook(t, info.AccountID)), "a repeat is a no-op")
		require.NoError(t, e.service.ConfirmDisable(ctx, e.disableHook(t, 987654)), "unknown account: nothing to do")
	})
}

func TestInstallRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	info, err := e.sb.CreateAccount(sandbox.AccountOptions{Subdomain: "clinic"})
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		code, referer string
		age           time.Duration
	}{
		"ForeignReferer": {info.Code, "clinic.evil.ru", 0},
		"WrongCode":      {"not-a-code", "clinic.amocrm.ru", 0},
		"CodeTooOld":     {info.Code, "clinic.amocrm.ru", 21 * time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			task := e.redirect(t, tc.code, tc.referer)
			e.now = e.now.Add(tc.age)
			err := e.service.ProcessTask(ctx, task)
			e.now = e.now.Add(-tc.age)
			require.ErrorIs(t, err, asynq.SkipRetry)
			_, err = e.db.AccountByAmoID(ctx, info.AccountID)
			require.True(t, errors.Is(err, store.ErrNotFound), "no account from a rejected install")
		})
	}
	t.Run("BadPayload", func(t *testing.T) {
		raw, _ := json.Marshal(map[string]string{"sealed_code": "!!"})
		require.ErrorIs(t, e.service.ProcessTask(ctx, asynq.NewTask(jobs.TypeInstallComplete, raw)), asynq.SkipRetry)
		require.ErrorIs(t, e.service.ProcessTask(ctx, asynq.NewTask(jobs.TypeInstallComplete, []byte("{"))), asynq.SkipRetry)
		require.ErrorIs(t, e.service.ConfirmDisable(ctx, asynq.NewTask(jobs.TypeInstallConfirmDisable, []byte("[]"))), asynq.SkipRetry)
	})
}
