package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/connector/demo"
)

// TestBrowserSync is ЗАПУСТИТЬ / ОСТАНОВИТЬ in a real browser, end to end:
// `svyazka run` with its sandbox account; the admin fills the install form
// and gets a token; ЗАПУСТИТЬ is disabled and says what is missing; the real
// svyazka-connector delivers a small demo clinic; autosetup runs from
// «Настройки»; ЗАПУСТИТЬ opens the dialog (a future date is refused inline),
// starts the import from a year back, and the button becomes ОСТАНОВИТЬ with
// the last start time. The progress block reaches done = total by the page's
// own polling, each database shows its last change received and written, and
// the sandbox's kanban has leads in «Первичный приём». ОСТАНОВИТЬ asks to
// confirm and the button is ЗАПУСТИТЬ again; a user who is not an admin sees
// it disabled.
func TestBrowserSync(t *testing.T) {
	t.Parallel()
	require.NoError(t, os.MkdirAll(screenshotDir, 0o755))
	connectorBin := buildConnector(t)
	widgetURL, apiURL := startRunURLs(t)
	ctx := newBrowser(t, 240*time.Second)

	var in chromedp.QueryOption
	pg := page{t: t, ctx: ctx, frame: func() chromedp.QueryOption { return in }}
	run, shot, text, waitText, count, disabled := pg.run, pg.shot, pg.text, pg.waitText, pg.count, pg.disabled
	in = openWidgetFrame(t, ctx, widgetURL)
	integration := func() {
		t.Helper()
		run("integration tab", chromedp.Click("#tab-integration", chromedp.ByQuery, in), chromedp.WaitVisible("#panel-integration", chromedp.ByQuery, in))
	}

	// Install form and a token.
	run("install form shown", chromedp.WaitVisible("#install-form", chromedp.ByQuery, in))
	waitText("#account-name", "demo-clinic", 20*time.Second)
	run("fill install form",
		chromedp.SendKeys("#f-name", "Анна Петрова", chromedp.ByQuery, in),
		chromedp.SendKeys("#f-phone", "+7 916 123-45-67", chromedp.ByQuery, in),
		chromedp.Click("#f-consent", chromedp.ByQuery, in),
		chromedp.Click("#install-save", chromedp.ByQuery, in),
	)
	run("install form done", chromedp.WaitNotVisible("#install-form", chromedp.ByQuery, in))
	run("get token", chromedp.Click("#get-token", chromedp.ByQuery, in), chromedp.WaitVisible("#token-box", chromedp.ByQuery, in))
	token := strings.TrimSpace(text("#token-value"))
	require.Regexp(t, `^svz_`, token)

	// Nothing connected or set up: ЗАПУСТИТЬ is disabled and says why.
	waitText("#start-missing", "Связка не настроена", 20*time.Second)
	require.True(t, disabled("#start-sync"))
	require.Equal(t, "ЗАПУСТИТЬ", strings.TrimSpace(text("#start-sync")))
	require.GreaterOrEqual(t, count("#start-missing li"), 2, "the connector and the setup are missing: %s", text("#start-missing"))
	require.Zero(t, count("#sync-progress:not([hidden])"), "no progress before a first start")
	run("scroll to the sync card", chromedp.ScrollIntoView("#sync-card", chromedp.ByQuery, in))
	shot("sync-01-not-ready")

	// A small demo clinic and the real connector.
	dsn := storetest.NewURL(t)
	require.NoError(t, demo.Create(context.Background(), dsn, demo.Options{Patients: 20, Seed: 6}))
	conn := exec.Command(connectorBin, "run", "--backend", apiURL, "--token", token, "--source", dsn,
		"--state-dir", t.TempDir(), "--poll", "1s")
	var connLog lockedBuffer
	conn.Stdout, conn.Stderr = &connLog, &connLog
	require.NoError(t, conn.Start())
	t.Cleanup(func() {
		if conn.ProcessState == nil {
			_ = conn.Process.Kill()
			_ = conn.Wait()
		}
	})
	const row = "#databases tbody tr:first-child"
	require.Eventually(t, func() bool { return count(row+" .icon.ok") == 2 }, 30*time.Second, 200*time.Millisecond,
		"the connector never connected; its log:\n%s", connLog.String())

	// Autosetup from «Настройки».
	run("settings tab", chromedp.Click("#tab-settings", chromedp.ByQuery, in), chromedp.WaitVisible("#panel-settings", chromedp.ByQuery, in))
	waitText("#setup-status", "Связка не настроена", 20*time.Second)
	run("autosetup", chromedp.Click("#setup-auto", chromedp.ByQuery, in), chromedp.WaitVisible("#setup-confirm", chromedp.ByQuery, in))
	run("confirm autosetup", chromedp.Click("#setup-confirm-go", chromedp.ByQuery, in))
	waitText("#setup-status", "Связка настроена", 60*time.Second)

	// Every condition met: ЗАПУСТИТЬ opens the dialog.
	integration()
	require.Eventually(t, func() bool { return !disabled("#start-sync") }, 20*time.Second, 200*time.Millisecond,
		"ЗАПУСТИТЬ never became enabled: %s", text("#start-missing"))
	require.Zero(t, count("#start-missing li"))
	run("ЗАПУСТИТЬ", chromedp.Click("#start-sync", chromedp.ByQuery, in), chromedp.WaitVisible("#sync-dialog", chromedp.ByQuery, in))
	var since string
	run("read the default date", chromedp.Value("#sync-since", &since, chromedp.ByQuery, in))
	yearAgo := time.Now().In(moscow(t)).AddDate(0, 0, -365)
	require.Contains(t, []string{yearAgo.Format("2006-01-02"), yearAgo.AddDate(0, 0, -1).Format("2006-01-02"), yearAgo.AddDate(0, 0, 1).Format("2006-01-02")},
		since, "a year back by default")
	require.Equal(t, 1, count("#sync-dbs input.sync-db:checked"), "the connected database is ticked")
	waitText("#sync-dbs", "База 1", 5*time.Second)

	// A future date is refused inline; a year back starts.
	tomorrow := time.Now().In(moscow(t)).AddDate(0, 0, 2).Format("2006-01-02")
	run("a future date", chromedp.SetValue("#sync-since", tomorrow, chromedp.ByQuery, in), chromedp.Click("#sync-go", chromedp.ByQuery, in))
	waitText("#sync-dialog-error", "не может быть в будущем", 5*time.Second)
	run("a year back", chromedp.SetValue("#sync-since", since, chromedp.ByQuery, in))
	shot("sync-02-dialog")
	run("Запустить", chromedp.Click("#sync-go", chromedp.ByQuery, in))
	run("dialog closed", chromedp.WaitNotVisible("#sync-dialog", chromedp.ByQuery, in))
	waitText("#start-sync", "ОСТАНОВИТЬ", 10*time.Second)
	require.Regexp(t, `Последний запуск: \d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}`, text("#sync-last-start"))
	require.Contains(t, text("#sync-state"), "Передача данных запущена")
	require.Contains(t, text("#sync-count"), since[8:10]+"."+since[5:7]+"."+since[:4], "the history's date")
	run("scroll to the sync card", chromedp.ScrollIntoView("#sync-card", chromedp.ByQuery, in))
	shot("sync-03-running")

	// The import finishes by the page's own polling: done = total.
	progress := func() (done, total int) {
		var d, tot string
		var ok1, ok2 bool
		_ = chromedp.Run(ctx, chromedp.AttributeValue("#sync-count", "data-done", &d, &ok1, chromedp.ByQuery, in),
			chromedp.AttributeValue("#sync-count", "data-total", &tot, &ok2, chromedp.ByQuery, in))
		done, _ = strconv.Atoi(d)
		total, _ = strconv.Atoi(tot)
		return done, total
	}
	require.Eventually(t, func() bool {
		d, tot := progress()
		return tot > 0 && d == tot
	}, 120*time.Second, 250*time.Millisecond, "the import never finished: %q; connector log:\n%s", text("#sync-count"), connLog.String())
	require.Contains(t, text("#sync-count"), "завершена")
	require.Equal(t, "готово", text("#sync-eta"))
	written := "#sync-databases tbody tr:first-child td.written"
	waitText(written, ".", 10*time.Second)
	require.Regexp(t, `\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}:\d{2}`, text(written), "last written, in the account's zone")
	require.Regexp(t, `\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}:\d{2}`, text("#sync-databases tbody tr:first-child td.received"))
	require.Contains(t, text("#sync-databases tbody tr:first-child td.db"), "База 1")
	require.Zero(t, count("#notice.error:not([hidden])"), "no error on the page: %s", text("#notice"))
	run("scroll to the sync card", chromedp.ScrollIntoView("#sync-card", chromedp.ByQuery, in))
	shot("sync-04-import-done")

	// The sandbox's kanban: leads in «Первичный приём».
	accountURL := strings.TrimSuffix(widgetURL, "/settings/widget")
	resp, err := http.Get(accountURL)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	m := regexp.MustCompile(`href="\?pipeline=(\d+)">Первичный приём`).FindSubmatch(page)
	require.NotNil(t, m, "the sandbox has the pipeline «Первичный приём»")
	run("the kanban of «Первичный приём»", chromedp.Navigate(accountURL+"?pipeline="+string(m[1])), chromedp.WaitVisible(".board", chromedp.ByQuery))
	var cards []*cdp.Node
	run("count the leads", chromedp.Nodes(".board .card", &cards, chromedp.ByQueryAll, chromedp.AtLeast(0)))
	require.NotEmpty(t, cards, "leads in «Первичный приём»")
	var heading string
	run("read the pipeline", chromedp.Text("main h2", &heading, chromedp.ByQuery))
	require.Equal(t, "Первичный приём", heading)
	shot("sync-05-kanban")

	// ОСТАНОВИТЬ asks first; then the button is ЗАПУСТИТЬ again.
	in = openWidgetFrame(t, ctx, widgetURL)
	waitText("#start-sync", "ОСТАНОВИТЬ", 20*time.Second)
	run("ОСТАНОВИТЬ", chromedp.Click("#start-sync", chromedp.ByQuery, in), chromedp.WaitVisible("#sync-stop-confirm", chromedp.ByQuery, in))
	require.Contains(t, text("#sync-stop-confirm"), "ничего не потеряется")
	run("scroll to the sync card", chromedp.ScrollIntoView("#sync-card", chromedp.ByQuery, in))
	shot("sync-06-stop-confirm")
	run("confirm the stop", chromedp.Click("#sync-stop-go", chromedp.ByQuery, in))
	waitText("#start-sync", "ЗАПУСТИТЬ", 10*time.Second)
	waitText("#sync-state", "Передача данных остановлена", 10*time.Second)
	require.False(t, disabled("#start-sync"), "it can start again")
	require.Contains(t, text("#sync-last-start"), "Последний запуск:")
	run("scroll to the sync card", chromedp.ScrollIntoView("#sync-card", chromedp.ByQuery, in))
	shot("sync-07-stopped")

	// Not an admin: disabled, and why.
	userID := addSandboxUser(t, widgetURL)
	in = openWidgetFrame(t, ctx, fmt.Sprintf("%s?user_id=%d", widgetURL, userID))
	waitText("#start-missing", "Доступно администратору аккаунта amoCRM", 20*time.Second)
	require.True(t, disabled("#start-sync"))
}

func moscow(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Moscow")
	require.NoError(t, err)
	return loc
}
