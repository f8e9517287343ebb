package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/connector/demo"
)

// TestBrowserConnectorStatus follows a database from token to live statuses
// in a real browser: the widget's «Управление интеграцией» tab shows both
// links «Подключение не выполнено» with hints and «Что проверить?»; the real
// svyazka-connector started with the page's token against a demo IDENT
// database turns both into «Подключение выполнено» while the page stays open
// (its 5-second poll, no reload); after the connector is killed the page
// still refreshes on «Проверить сейчас» and the last heartbeat stays put.
func TestBrowserConnectorStatus(t *testing.T) {
	t.Parallel()
	require.NoError(t, os.MkdirAll(screenshotDir, 0o755))
	connectorBin := buildConnector(t)

	widgetURL, apiURL := startRunURLs(t)
	ctx := newBrowser(t, 120*time.Second)

	var in chromedp.QueryOption
	pg := page{t: t, ctx: ctx, frame: func() chromedp.QueryOption { return in }}
	run, shot, text, waitText, count := pg.run, pg.shot, pg.text, pg.waitText, pg.count
	in = openWidgetFrame(t, ctx, widgetURL)
	const (
		row       = "#databases tbody tr:first-child"
		connector = row + " td.connector-status"
		database  = row + " td.database-status"
	)

	// Install form, then a token.
	run("install form shown", chromedp.WaitVisible("#install-form", chromedp.ByQuery, in))
	waitText("#account-name", "demo-clinic", 20*time.Second)
	run("fill install form",
		chromedp.SendKeys("#f-name", "Анна Петрова", chromedp.ByQuery, in),
		chromedp.SendKeys("#f-phone", "+7 916 123-45-67", chromedp.ByQuery, in),
		chromedp.Click("#f-consent", chromedp.ByQuery, in),
		chromedp.Click("#install-save", chromedp.ByQuery, in),
	)
	run("install form done", chromedp.WaitNotVisible("#install-form", chromedp.ByQuery, in))
	var tokenTitle string
	var ok bool
	run("token button enabled for the admin", chromedp.AttributeValue("#get-token", "title", &tokenTitle, &ok, chromedp.ByQuery, in))
	require.Empty(t, tokenTitle, "an admin gets no «only for admins» tooltip")
	run("get token", chromedp.Click("#get-token", chromedp.ByQuery, in), chromedp.WaitVisible("#token-box", chromedp.ByQuery, in))
	token := strings.TrimSpace(text("#token-value"))
	require.Regexp(t, `^svz_[A-Za-z0-9_-]{43}$`, token)
	require.Contains(t, text("#token-steps"), "нажмите «Подключить»")

	// No connector yet: both links down, each with a hint and «Что проверить?».
	waitText(row, "База 1", 20*time.Second)
	waitText(connector+" .status", "Подключение не выполнено", 20*time.Second)
	waitText(database+" .status", "Подключение не выполнено", 20*time.Second)
	require.Equal(t, 2, count(row+" .icon.bad"), "two 🔴")
	require.NotEmpty(t, text(connector+" .hint"))
	require.NotEmpty(t, text(database+" .hint"))
	require.Contains(t, text(row+" .last-seen"), "ещё не было")
	require.Contains(t, text(row), "Часовой пояс базы: Europe/Moscow")
	run("open «Что проверить?»", chromedp.Click(database+" .check-help summary", chromedp.ByQuery, in))
	help := text(database + " .check-help")
	for _, want := range []string{"Коннектор запущен", "порт", "пароль", "Подписка активна"} {
		require.Contains(t, help, want)
	}
	// A poll re-renders the table; the open expander stays open.
	checked := text("#checked-at")
	require.Eventually(t, func() bool {
		var s string
		_ = chromedp.Run(ctx, chromedp.Text("#checked-at", &s, chromedp.ByQuery, in))
		return s != "" && s != checked
	}, 20*time.Second, 100*time.Millisecond, "the page polls the state by itself")
	require.Equal(t, 1, count(database+" details.check-help[open]"), "the expander survives a poll")
	shot("connector-01-not-connected")

	// A demo clinic and the real connector with the page's token.
	dsn := storetest.NewURL(t)
	require.NoError(t, demo.Create(context.Background(), dsn, demo.Options{Patients: 30, Seed: 4}))
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

	// The first heartbeat shows without a reload: the token box, shown once
	// per issue, is still on the page.
	connected := func(sel string) {
		t.Helper()
		var s string
		require.Eventually(t, func() bool {
			_ = chromedp.Run(ctx, chromedp.Text(sel+" .status", &s, chromedp.ByQuery, in))
			return strings.Contains(s, "Подключение выполнено") && !strings.Contains(s, "не выполнено")
		}, 20*time.Second, 100*time.Millisecond, "%s never became connected (last: %q); connector log:\n%s", sel, s, connLog.String())
	}
	connected(connector)
	connected(database)
	require.Equal(t, 2, count(row+" .icon.ok"), "two ✅")
	require.Zero(t, count(row+" .check-help"), "no «Что проверить?» when all is well")
	require.Zero(t, count(row+" .hint"))
	require.Equal(t, token, strings.TrimSpace(text("#token-value")), "the page was not reloaded")
	lastSeen := text(row + " .last-seen")
	require.NotContains(t, lastSeen, "ещё не было")
	require.Regexp(t, `\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}:\d{2}`, lastSeen, "the last heartbeat in the account's zone")
	require.Contains(t, text("#checked-at"), "Europe/Moscow")
	shot("connector-02-connected")

	// A hidden page (another amoCRM tab) polls nothing; shown again, it
	// refreshes at once rather than at the next 5-second tick.
	setVisibility := func(state string) {
		t.Helper()
		run("page "+state, callIn("#check-now", in, `function () {
			var doc = this.ownerDocument;
			Object.defineProperty(doc, 'visibilityState', { configurable: true, get: function () { return '`+state+`'; } });
			doc.dispatchEvent(new Event('visibilitychange'));
		}`))
	}
	setVisibility("hidden")
	checked = text("#checked-at")
	time.Sleep(7 * time.Second) // longer than one poll period
	require.Equal(t, checked, text("#checked-at"), "a hidden page does not poll")
	setVisibility("visible")
	require.Eventually(t, func() bool {
		var s string
		_ = chromedp.Run(ctx, chromedp.Text("#checked-at", &s, chromedp.ByQuery, in))
		return s != checked
	}, 4*time.Second, 100*time.Millisecond, "a page shown again refreshes at once")

	// The connector dies. Its statuses go stale only after three minutes of
	// silence (backend rule); the page keeps refreshing meanwhile.
	require.NoError(t, conn.Process.Kill())
	_ = conn.Wait()
	lastSeen = text(row + " .last-seen")
	checked = text("#checked-at")
	time.Sleep(1100 * time.Millisecond) // «Обновлено в» has a resolution of one second
	run("check now", chromedp.Click("#check-now", chromedp.ByQuery, in))
	require.Eventually(t, func() bool {
		var s string
		_ = chromedp.Run(ctx, chromedp.Text("#checked-at", &s, chromedp.ByQuery, in))
		return s != checked
	}, 10*time.Second, 100*time.Millisecond, "«Проверить сейчас» refreshes at once")
	require.Equal(t, lastSeen, text(row+" .last-seen"), "no heartbeat after the connector stopped")
	require.Zero(t, count("#notice.error:not([hidden])"), "no error on the page")
	var disabled bool
	run("check-now enabled again", chromedp.JavascriptAttribute("#check-now", "disabled", &disabled, chromedp.ByQuery, in))
	require.False(t, disabled)
	shot("connector-03-connector-stopped")

	// A user who is not an amoCRM admin sees the statuses but cannot issue
	// tokens (the API refuses them with 403 too).
	userID := addSandboxUser(t, widgetURL)
	in = openWidgetFrame(t, ctx, fmt.Sprintf("%s?user_id=%d", widgetURL, userID))
	waitText(connector+" .status", "Подключение выполнено", 20*time.Second)
	run("token button disabled",
		chromedp.JavascriptAttribute("#get-token", "disabled", &disabled, chromedp.ByQuery, in),
		chromedp.AttributeValue("#get-token", "title", &tokenTitle, &ok, chromedp.ByQuery, in))
	require.True(t, disabled, "«Получить токен» is for admins")
	require.Equal(t, "Доступно администратору аккаунта amoCRM", tokenTitle)
	require.Equal(t, 1, count(row+" button:disabled"), "«Новый токен» is for admins")
	require.Zero(t, count("#token-box:not([hidden])"), "no token on a fresh page")
	shot("connector-04-not-admin")
}

// addSandboxUser adds an active user who is not an admin to the account of
// the sandbox's widget URL (…/accounts/{id}/settings/widget) and returns the
// user's id.
func addSandboxUser(t *testing.T, widgetURL string) int64 {
	t.Helper()
	u, err := url.Parse(widgetURL)
	require.NoError(t, err)
	accountPath := strings.TrimSuffix(u.Path, "/settings/widget")
	resp, err := http.Post(u.Scheme+"://"+u.Host+"/_sandbox"+accountPath+"/users", "application/json",
		strings.NewReader(`{"name":"Ольга Менеджер","is_active":true}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var user struct {
		ID int64 `json:"id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&user))
	require.Positive(t, user.ID)
	return user.ID
}

// callIn calls the JavaScript function fn with this bound to the element sel
// of the frame in: it runs in that frame's own context, which a cross-origin
// iframe's page cannot reach otherwise.
func callIn(sel string, in chromedp.QueryOption, fn string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var nodes []*cdp.Node
		if err := chromedp.Nodes(sel, &nodes, chromedp.ByQuery, in).Do(ctx); err != nil {
			return err
		}
		obj, err := dom.ResolveNode().WithNodeID(nodes[0].NodeID).Do(ctx)
		if err != nil {
			return err
		}
		_, exc, err := runtime.CallFunctionOn(fn).WithObjectID(obj.ObjectID).Do(ctx)
		if err == nil && exc != nil {
			err = exc
		}
		return err
	})
}

// buildConnector builds cmd/svyazka-connector into the test's temporary
// directory and returns the binary's path.
func buildConnector(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "svyazka-connector")
	out, err := exec.Command("go", "build", "-o", bin, "../svyazka-connector").CombinedOutput()
	require.NoError(t, err, "build svyazka-connector:\n%s", out)
	return bin
}

// newBrowser starts Debian's headless chromium for the test and returns a
// chromedp context that ends after timeout (or with the test).
func newBrowser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	const chromium = "/usr/bin/chromium"
	_, err := os.Stat(chromium)
	require.NoError(t, err, "Debian's chromium is needed (make test installs it: scripts/browser.sh)")
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelTimeout)
	return ctx
}
