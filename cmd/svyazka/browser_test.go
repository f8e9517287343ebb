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
	const chromium = "/usr/bin/chromium"
	_, err := os.Stat(chromium)
	require.NoError(t, err, "Debian's chromium is needed (make test installs it: scripts/browser.sh)")
	require.NoError(t, os.MkdirAll(screenshotDir, 0o755))

	widgetURL := startRun(t)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)

	run := func(step string, actions ...chromedp.Action) {
		t.Helper()
		require.NoError(t, chromedp.Run(ctx, actions...), step)
	}
	shot := func(name string) {
		t.Helper()
		var png []byte
		run("screenshot "+name, chromedp.FullScreenshot(&png, 100))
		require.NoError(t, os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644))
	}

	in := openWidgetFrame(t, ctx, widgetURL)
	text := func(sel string) string {
		t.Helper()
		var s string
		run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery, in))
		return s
	}
	waitText := func(sel, want string) {
		t.Helper()
		require.Eventually(t, func() bool {
			var s string
			_ = chromedp.Run(ctx, chromedp.Text(sel, &s, chromedp.ByQuery, in))
			return strings.Contains(s, want)
		}, 20*time.Second, 100*time.Millisecond, "%s never showed %q", sel, want)
	}
	rows := func() int {
		var nodes []*cdp.Node
		_ = chromedp.Run(ctx, chromedp.Nodes("#events tbody tr", &nodes, chromedp.ByQueryAll, chromedp.AtLeast(0), in))
		return len(nodes)
	}

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
