package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store/storetest"
)

// screenshots go to a git-ignored folder at the repository root.
var screenshotDir = filepath.Join("..", "..", ".artifacts", "screenshots")

var (
	widgetURLLine = regexp.MustCompile(`Widget in amoCRM \(sandbox\):\s+(\S+)`)
	apiURLLine    = regexp.MustCompile(`^\s*API:\s+(\S+)`)
)

// TestBrowserWidget is the widget's whole path in a real browser: `svyazka
// run` installs the widget in its sandbox account; Debian's chromium opens
// the sandbox's Settings page, which runs the widget's script.js; the widget
// opens our settings page in an iframe; the test fills the install form,
// gets a connector token, opens every tab, filters and sorts the event log.
func TestBrowserWidget(t *testing.T) {
	t.Parallel()
	require.NoError(t, os.MkdirAll(screenshotDir, 0o755))
	widgetURL := startRun(t)
	ctx := newBrowser(t, 90*time.Second)
	var in chromedp.QueryOption
	pg := page{t: t, ctx: ctx, frame: func() chromedp.QueryOption { return in }}
	run, shot, text := pg.run, pg.shot, pg.text
	waitText := func(sel, want string) { t.Helper(); pg.waitText(sel, want, 20*time.Second) }
	in = openWidgetFrame(t, ctx, widgetURL)
	rows := func() int { return pg.count("#events tbody tr") }

	// Install form.
	run("install form shown", chromedp.WaitVisible("#install-form", chromedp.ByQuery, in))
	waitText("#account-name", "demo-clinic")
	shot("01-install-form")
	run("fill install form",
		chromedp.SendKeys("#f-name", "Анна Петрова", chromedp.ByQuery, in),
		chromedp.SendKeys("#f-phone", "8 (916) 123-45-67", chromedp.ByQuery, in),
		chromedp.Click("#install-save", chromedp.ByQuery, in),
	)
	waitText("#install-error", "согласие")
	run("consent and save", chromedp.Click("#f-consent", chromedp.ByQuery, in), chromedp.Click("#install-save", chromedp.ByQuery, in))
	run("install form done", chromedp.WaitNotVisible("#install-form", chromedp.ByQuery, in))
	waitText("#notice", "Данные сохранены")

	// Connector token, shown once.
	run("get token", chromedp.Click("#get-token", chromedp.ByQuery, in), chromedp.WaitVisible("#token-box", chromedp.ByQuery, in))
	require.Regexp(t, `^svz_[A-Za-z0-9_-]{43}$`, text("#token-value"))
	waitText("#databases tbody", "База 1")
	waitText("#databases tbody", "Подключение не выполнено")
	alerts := func() map[string]bool {
		out := map[string]bool{}
		for _, tab := range []string{"integration", "subscription", "settings", "events"} {
			var nodes []*cdp.Node
			_ = chromedp.Run(ctx, chromedp.Nodes("#tab-"+tab+" .tab-alert:not([hidden])", &nodes, chromedp.ByQueryAll, chromedp.AtLeast(0), in))
			out[tab] = len(nodes) > 0
		}
		return out
	}
	require.Eventually(t, func() bool {
		a := alerts()
		return a["integration"] && !a["subscription"] && !a["settings"] && !a["events"]
	}, 20*time.Second, 100*time.Millisecond, "only «Управление интеграцией» has a problem (no connector yet): %v", alerts())
	var tooltip string
	var ok bool
	run("tab tooltip", chromedp.AttributeValue("#tab-integration", "title", &tooltip, &ok, chromedp.ByQuery, in))
	require.Contains(t, tooltip, "нет связи с коннектором")
	shot("02-integration")

	// The other tabs.
	run("subscription tab", chromedp.Click("#tab-subscription", chromedp.ByQuery, in), chromedp.WaitVisible("#panel-subscription", chromedp.ByQuery, in))
	waitText("#sub-status", "Бесплатный пробный период")
	require.Contains(t, text("#sub-dates"), "Пробный период до")
	shot("03-subscription")
	run("settings tab", chromedp.Click("#tab-settings", chromedp.ByQuery, in), chromedp.WaitVisible("#panel-settings", chromedp.ByQuery, in))
	waitText("#setup-status", "Связка не настроена")
	shot("04-settings")

	// Event log: install, install form, token — newest first.
	run("events tab", chromedp.Click("#tab-events", chromedp.ByQuery, in), chromedp.WaitVisible("#panel-events", chromedp.ByQuery, in))
	require.Eventually(t, func() bool { return rows() == 3 }, 20*time.Second, 100*time.Millisecond, "three events")
	require.Contains(t, text("#events tbody tr:first-child"), "Выдан токен")
	shot("05-events")

	run("sort oldest first", chromedp.Click("#sort-date", chromedp.ByQuery, in))
	waitText("#events tbody tr:first-child", "Установка виджета")
	require.Equal(t, "Дата ↑", text("#sort-date"))

	run("filter by type", chromedp.SendKeys("#flt-type", "Выдан", chromedp.ByQuery, in))
	require.Eventually(t, func() bool { return rows() == 1 }, 20*time.Second, 100*time.Millisecond, "one token event")
	waitText("#events tbody", "Выдан токен")
	shot("06-events-filtered")

	run("reset filters", chromedp.Click("#flt-reset", chromedp.ByQuery, in))
	require.Eventually(t, func() bool { return rows() == 3 }, 20*time.Second, 100*time.Millisecond, "all events again")
	run("search text", chromedp.SendKeys("#flt-text", "согласие", chromedp.ByQuery, in))
	require.Eventually(t, func() bool { return rows() == 1 }, 20*time.Second, 100*time.Millisecond, "one install-form event")
	waitText("#events tbody", "Данные установки")
	waitText("#page-info", "всего 1")
	shot("07-events-search")
}

// startRun starts `svyazka run` on free ports with a database and Redis of
// its own, and returns the printed widget URL.
func startRun(t *testing.T) string {
	t.Helper()
	widgetURL, _ := startRunURLs(t)
	return widgetURL
}

// startRunURLs is startRun that also returns the printed API URL (the
// backend a connector talks to).
func startRunURLs(t *testing.T) (widgetURL, apiURL string) {
	t.Helper()
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := map[string]string{
		"DATABASE_URL": storetest.NewURL(t),
		"REDIS_URL":    redisURL(t),
		"HTTP_ADDR":    apiAddr,
		"SANDBOX_ADDR": fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"LOG_LEVEL":    "warn",
	}
	cmd := command(env, "run")
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { stopProcess(t, cmd, &stderr) })

	type urls struct{ widget, api string }
	found := make(chan urls, 1)
	go func() {
		var u urls
		sent := false
		sc := bufio.NewScanner(stdout) // drained to the end, so the child never blocks on a full pipe
		for sc.Scan() {
			if m := widgetURLLine.FindStringSubmatch(sc.Text()); m != nil {
				u.widget = m[1]
			}
			if m := apiURLLine.FindStringSubmatch(sc.Text()); m != nil {
				u.api = m[1]
			}
			if !sent && u.widget != "" && u.api != "" {
				found <- u
				sent = true
			}
		}
	}()
	select {
	case u := <-found:
		return u.widget, u.api
	case <-time.After(60 * time.Second):
		t.Fatalf("svyazka run printed no widget and API URLs:\n%s", stderr.String())
	}
	return "", ""
}

func stopProcess(t *testing.T, cmd *exec.Cmd, stderr *lockedBuffer) {
	if cmd.ProcessState != nil {
		return // already stopped
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("svyazka run did not stop cleanly: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("svyazka run did not stop within 30s after SIGINT")
	}
}

// page holds what every browser test does on the widget's page: ctx is
// the browser tab, frame the widget's iframe as the test has it now (a test
// opens it again after a reload or as another user).
type page struct {
	t     *testing.T
	ctx   context.Context
	frame func() chromedp.QueryOption
}

func (p page) run(step string, actions ...chromedp.Action) {
	p.t.Helper()
	require.NoError(p.t, chromedp.Run(p.ctx, actions...), step)
}

// shot saves a full-page screenshot as screenshotDir/name.png.
func (p page) shot(name string) {
	p.t.Helper()
	var png []byte
	p.run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
	require.NoError(p.t, os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644))
}

func (p page) text(sel string) string {
	p.t.Helper()
	var s string
	p.run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery, p.frame()))
	return s
}

// waitText waits up to within for sel to show want: the page is never
// reloaded, so a change can only come from its own polling.
func (p page) waitText(sel, want string, within time.Duration) {
	p.t.Helper()
	var s string
	require.Eventually(p.t, func() bool {
		_ = chromedp.Run(p.ctx, chromedp.Text(sel, &s, chromedp.ByQuery, p.frame()))
		return strings.Contains(s, want)
	}, within, 100*time.Millisecond, "%s never showed %q (last: %q)", sel, want, s)
}

func (p page) count(sel string) int {
	var nodes []*cdp.Node
	_ = chromedp.Run(p.ctx, chromedp.Nodes(sel, &nodes, chromedp.ByQueryAll, chromedp.AtLeast(0), p.frame()))
	return len(nodes)
}

func (p page) disabled(sel string) bool {
	p.t.Helper()
	var d bool
	p.run("read disabled of "+sel, chromedp.JavascriptAttribute(sel, "disabled", &d, chromedp.ByQuery, p.frame()))
	return d
}
