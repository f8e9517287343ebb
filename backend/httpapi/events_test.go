package httpapi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/httpapi"
	"github.com/svyazka/svyazka/backend/install"
	"github.com/svyazka/svyazka/backend/metrics"
	"github.com/svyazka/svyazka/backend/ratelimit"
	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/sealer"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/backend/widgetauth"
	"github.com/svyazka/svyazka/jobs"
	"github.com/svyazka/svyazka/widget"
)

// hookedStore is the real store whose export runs onBatch before handing
// each batch (numbered from 1) to the CSV writer; onBatch's error is a
// database failure in the middle of the stream.
type hookedStore struct {
	*store.DB
	onBatch func(ctx context.Context, n int) error
}

func (s hookedStore) ExportEvents(ctx context.Context, f eventlog.Filter, limit int, fn func([]eventlog.Event) error) (bool, error) {
	n := 0
	return s.DB.ExportEvents(ctx, f, limit, func(batch []eventlog.Event) error {
		n++
		if err := s.onBatch(ctx, n); err != nil {
			return fmt.Errorf("store: export events: %w", err)
		}
		return fn(batch)
	})
}

// allowAll admits every call: the OAuth callback limits are not tested here.
type allowAll struct{}

func (allowAll) Allow(context.Context, string, ratelimit.Rate) (bool, time.Duration, error) {
	return true, 0, nil
}

// syncBuffer collects the server's log lines from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type exportEnvOptions struct {
	requestTimeout time.Duration // the general per-request deadline
	serverTimeout  time.Duration // http.Server read and write timeouts; 0 = none
	onBatch        func(ctx context.Context, n int) error
	log            io.Writer
}

// newExportEnv is newWidgetEnv with the server's timeouts, log and the
// store's export hook under the test's control.
func newExportEnv(t *testing.T, o exportEnvOptions) *widgetEnv {
	t.Helper()
	env := &widgetEnv{t: t, db: storetest.New(t)}
	env.now.Store(time.Now().UnixNano())
	if o.log == nil {
		o.log = io.Discard
	}
	if o.onBatch == nil {
		o.onBatch = func(context.Context, int) error { return nil }
	}
	log := slog.New(slog.NewTextHandler(o.log, nil))
	redis := redistest.Client(t)
	auth, err := widgetauth.New(widgetauth.Config{
		ClientID: testClientID, ClientSecret: testSecret,
		RedirectURI: "https://api.svyazka.test/oauth/amocrm/callback",
		SessionKey:  []byte("0123456789abcdef0123456789abcdef"),
		Replay:      widgetauth.RedisReplayGuard{Client: redis, Now: env.clock},
		Now:         env.clock,
	})
	require.NoError(t, err)
	seal, err := sealer.New(make([]byte, 32))
	require.NoError(t, err)
	srv, err := httpapi.New(httpapi.Deps{Logger: log, Metrics: metrics.New(), Checks: map[string]httpapi.Pinger{}},
		httpapi.Options{RequestTimeout: o.requestTimeout})
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ReadTimeout, ts.Config.WriteTimeout = o.serverTimeout, o.serverTimeout
	ts.Start()
	t.Cleanup(ts.Close)
	env.ts = ts
	installer := &install.Service{Store: env.db, Sealer: seal, TrialDays: 14, Now: env.clock, Log: log,
		Relay: &jobs.OutboxRelay{Store: env.db, Client: newQueueClient(t)}}
	require.NoError(t, srv.RegisterWidget(httpapi.WidgetConfig{
		PublicURL: ts.URL, ClientID: testClientID, ClientSecret: testSecret,
		Auth: auth, Installer: installer, App: hookedStore{DB: env.db, onBatch: o.onBatch}, Now: env.clock,
		Page: widget.Pages{}, Assets: widget.Assets(), Limiter: allowAll{}, MaxDatabases: 10,
	}))
	return env
}

// installAt installs an account for the export tests (Moscow time).
func installAt(e *widgetEnv, amoID int64, sub string) store.Account {
	e.t.Helper()
	acc, _, err := e.db.InstallAccount(context.Background(), store.InstallInput{AmoAccountID: amoID, Subdomain: sub,
		BaseDomain: "amocrm.ru", Timezone: "Europe/Moscow", TrialDays: 14, Now: e.clock().UTC()})
	require.NoError(e.t, err)
	return acc
}

// seed inserts n events: "Пациент g: …" one second apart, every tenth an error.
func seed(t *testing.T, db *store.DB, accountID int64, n int) {
	t.Helper()
	_, err := db.SQL().Exec(`INSERT INTO events (account_id, type, severity, message, created_at)
		SELECT $1, CASE WHEN g % 10 = 0 THEN 'sync_error' ELSE 'sync_started' END,
		       CASE WHEN g % 10 = 0 THEN 'error' ELSE 'info' END,
		       'Пациент ' || g || ': запись передана', timestamptz '2026-11-01 00:00:00Z' + g * interval '1 second'
		FROM generate_series(1, $2) g`, accountID, n)
	require.NoError(t, err)
}

// parseExport splits an export into its rows and its final line.
func parseExport(t *testing.T, r reply) (header []string, rows [][]string, final string) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, "text/csv; charset=utf-8", r.header.Get("Content-Type"))
	body := string(r.body)
	require.True(t, strings.HasPrefix(body, "\ufeff"), "Excel needs the BOM")
	cr := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "\ufeff")))
	cr.Comma = ';'
	cr.FieldsPerRecord = -1
	all, err := cr.ReadAll()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(all), 2, "a header and a final line")
	last := all[len(all)-1]
	require.Len(t, last, 1, "the final line is one cell: %q", last)
	return all[0], all[1 : len(all)-1], last[0]
}

func TestEventsCSVStreamsEverything(t *testing.T) {
	t.Parallel()
	const n = 25_000
	env := newExportEnv(t, exportEnvOptions{
		// The export outlives both the general request deadline and the
		// server's write timeout: it has its own bound.
		requestTimeout: 50 * time.Millisecond,
		serverTimeout:  300 * time.Millisecond,
		onBatch:        func(context.Context, int) error { time.Sleep(15 * time.Millisecond); return nil },
	})
	acc := installAt(env, 1, "alpha")
	_, session := env.open(1, "alpha", 11)
	seed(t, env.db, acc.ID, n)

	for _, sort := range []string{"desc", "asc"} {
		t.Run(sort, func(t *testing.T) {
			r := env.do(http.MethodGet, "/api/app/v1/events.csv?type=sync_started,sync_error&sort="+sort, bearer(session), nil)
			header, rows, final := parseExport(t, r)
			require.Equal(t, []string{"Дата", "Тип", "Важность", "База", "Сообщение"}, header)
			require.Equal(t, fmt.Sprintf(eventlog.CSVCompleteLine, n), final)
			require.Len(t, rows, n)
			for i, row := range rows {
				g := n - i
				if sort == "asc" {
					g = i + 1
				}
				require.Equal(t, fmt.Sprintf("Пациент %d: запись передана", g), row[4], "row %d", i)
			}
			oldest := rows[len(rows)-1]
			if sort == "asc" {
				oldest = rows[0]
			}
			require.Equal(t, []string{"01.11.2026 03:00:01", "Запуск синхронизации", "Информация", "", "Пациент 1: запись передана"}, oldest,
				"dates in the account's zone")
		})
	}
	t.Run("Filtered", func(t *testing.T) {
		r := env.do(http.MethodGet, "/api/app/v1/events.csv?severity=error&q="+url.QueryEscape("ПАЦИЕНТ 1"), bearer(session), nil)
		_, rows, final := parseExport(t, r)
		// Errors are every tenth g; "Пациент 1" prefixes 10, 100..190, 1000..1990, 10000..19990.
		want := 1 + 10 + 100 + 1000
		require.Equal(t, fmt.Sprintf(eventlog.CSVCompleteLine, want), final)
		require.Len(t, rows, want)
		require.Equal(t, "Пациент 19990: запись передана", rows[0][4])
	})
}

func TestEventsCSVFailureMidStream(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	env := newExportEnv(t, exportEnvOptions{
		log: &logs,
		onBatch: func(_ context.Context, n int) error {
			if n == 3 {
				return errors.New("connection reset by peer")
			}
			return nil
		},
	})
	acc := installAt(env, 1, "alpha")
	_, session := env.open(1, "alpha", 11)
	seed(t, env.db, acc.ID, 5_000)

	r := env.do(http.MethodGet, "/api/app/v1/events.csv?q="+url.QueryEscape("Пациент"), bearer(session), nil)
	_, rows, final := parseExport(t, r)
	require.Equal(t, eventlog.CSVFailedLine, final, "the user sees the file is incomplete")
	require.Len(t, rows, 2*store.ExportBatch, "the batches before the failure")
	require.Contains(t, logs.String(), "events export failed")
	require.Contains(t, logs.String(), "connection reset by peer")
	require.NotContains(t, logs.String(), "Пациент", "no personal data in the log")
}

func TestEventsCSVConcurrencyBound(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	env := newExportEnv(t, exportEnvOptions{onBatch: func(ctx context.Context, n int) error {
		if n == 1 {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}})
	sessions := make([]string, 6)
	for i := 1; i <= 5; i++ {
		sub := fmt.Sprintf("clinic%d", i)
		installAt(env, int64(i), sub)
		_, sessions[i] = env.open(int64(i), sub, 10)
	}
	var wg sync.WaitGroup
	finals := make([]string, 6)
	exportAsync := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := env.do(http.MethodGet, "/api/app/v1/events.csv", bearer(sessions[i]), nil)
			_, _, finals[i] = parseExport(t, r)
		}()
		<-started
	}
	refused := func(i int, want string) {
		t.Helper()
		r := env.do(http.MethodGet, "/api/app/v1/events.csv", bearer(sessions[i]), nil)
		require.Equal(t, http.StatusTooManyRequests, r.status)
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		require.Equal(t, "30", r.header.Get("Retry-After"))
		require.Equal(t, "rate_limited", errCode(t, r))
		require.Contains(t, r.json(t)["error"].(map[string]any)["message"], want)
	}

	exportAsync(1)
	refused(1, "Выгрузка событий этого аккаунта уже идёт")
	r := env.do(http.MethodGet, "/api/app/v1/events", bearer(sessions[1]), nil)
	require.Equal(t, http.StatusOK, r.status, "the list is not limited")
	for i := 2; i <= 4; i++ {
		exportAsync(i)
	}
	refused(5, "Сейчас выполняется много выгрузок")

	close(release)
	wg.Wait()
	for i := 1; i <= 4; i++ {
		require.Equal(t, fmt.Sprintf(eventlog.CSVCompleteLine, 1), finals[i], "export %d", i)
	}
	go func() { <-started }() // the slot is free again; this one does not wait
	_, rows, final := parseExport(t, env.do(http.MethodGet, "/api/app/v1/events.csv", bearer(sessions[5]), nil))
	require.Len(t, rows, 1)
	require.Equal(t, fmt.Sprintf(eventlog.CSVCompleteLine, 1), final)
}

func TestEventsBadInput(t *testing.T) {
	t.Parallel()
	env := newExportEnv(t, exportEnvOptions{})
	installAt(env, 1, "alpha")
	_, session := env.open(1, "alpha", 11)
	for name, tc := range map[string]struct{ query, param string }{
		"NULInText":        {"q=%D0%98%00", "q"},
		"BadUTF8InText":    {"q=%D0%FF", "q"},
		"LongText":         {"q=" + strings.Repeat("%D1%8F", eventlog.MaxTextRunes+1), "q"},
		"NULInType":        {"type=install%00", "type"},
		"BadUTF8InType":    {"type=%C3%28", "type"},
		"NULInSeverity":    {"severity=error%00", "severity"},
		"BadUTF8Severity":  {"severity=%FF", "severity"},
		"NULInDatabase":    {"database_id=1%00", "database_id"},
		"BadUTF8Database":  {"database_id=%FE", "database_id"},
		"NULInFrom":        {"from=2026-11-01%00", "from"},
		"BadUTF8InFrom":    {"from=%FF", "from"},
		"NULInTo":          {"to=%00", "to"},
		"BadUTF8InTo":      {"to=2026-11-01%FF", "to"},
		"NULInSort":        {"sort=asc%00", "sort"},
		"BadUTF8InPerPage": {"per_page=%FF", "per_page"},
	} {
		for _, path := range []string{"/api/app/v1/events?", "/api/app/v1/events.csv?"} {
			r := env.do(http.MethodGet, path+tc.query, bearer(session), nil)
			require.Equal(t, http.StatusBadRequest, r.status, "%s %s: %s", name, path, r.body)
			require.Equal(t, "invalid", errCode(t, r), name)
			require.Contains(t, r.json(t)["error"].(map[string]any)["message"], "Параметр "+tc.param+":", name)
		}
	}
	r := env.do(http.MethodGet, "/api/app/v1/events?q="+strings.Repeat("%D1%8F", eventlog.MaxTextRunes), bearer(session), nil)
	require.Equal(t, http.StatusOK, r.status, "the bound is in characters: %s", r.body)
}
