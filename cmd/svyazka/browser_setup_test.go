package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestBrowserSetup drives the «Настройки» tab in a real browser: `svyazka
// run` installs the widget in its sandbox account; the admin opens the tab
// («Связка не настроена»), runs autosetup from the widget with all three
// blocks, renames the lead field «Врач» to «Лечащий врач» before it is
// created, confirms and waits for «Связка настроена» ✅. What amoCRM now
// has is read back through GET /api/app/v1/setup (its "options" come from
// the sandbox): both pipelines exist and the doctor field exists under the
// new name only, and it is mapped. Then one mapping is changed by hand —
// «Филиал» set to «Не передавать» — saved at once («Сохранено») and still
// there after a reload; so is a fixed responsible user. A user who is not
// an admin sees it all read-only.
func TestBrowserSetup(t *testing.T) {
	t.Parallel()
	require.NoError(t, os.MkdirAll(screenshotDir, 0o755))
	widgetURL := startRun(t)
	ctx := newBrowser(t, 150*time.Second)

	var in chromedp.QueryOption
	pg := page{t: t, ctx: ctx, frame: func() chromedp.QueryOption { return in }}
	run, shot, text, waitText, count := pg.run, pg.shot, pg.text, pg.waitText, pg.count
	open := func() {
		t.Helper()
		in = openWidgetFrame(t, ctx, widgetURL)
	}
	// selected is the text of the chosen option of the select of an item.
	selected := func(item string) string {
		t.Helper()
		var s string
		run("read the choice of "+item, evalIn(`select[data-item="`+item+`"]`, in,
			`function () { return this.options[this.selectedIndex] ? this.options[this.selectedIndex].text : ''; }`, &s))
		return s
	}
	openSettings := func() {
		t.Helper()
		run("settings tab", chromedp.Click("#tab-settings", chromedp.ByQuery, in), chromedp.WaitVisible("#panel-settings", chromedp.ByQuery, in))
		require.Eventually(t, func() bool { return count("#setup-flex-body:not([hidden])") == 1 }, 30*time.Second, 100*time.Millisecond,
			"flexible setup never loaded: %q %q", text("#setup-options-error"), text("#notice"))
	}

	open()
	run("install form shown", chromedp.WaitVisible("#install-form", chromedp.ByQuery, in))
	waitText("#account-name", "demo-clinic", 20*time.Second)
	run("fill install form",
		chromedp.SendKeys("#f-name", "Анна Петрова", chromedp.ByQuery, in),
		chromedp.SendKeys("#f-phone", "+7 916 123-45-67", chromedp.ByQuery, in),
		chromedp.Click("#f-consent", chromedp.ByQuery, in),
		chromedp.Click("#install-save", chromedp.ByQuery, in),
	)
	run("install form done", chromedp.WaitNotVisible("#install-form", chromedp.ByQuery, in))

	// Not configured yet: the flexible setup offers amoCRM's fields; a
	// required item has no «Не передавать».
	openSettings()
	waitText("#setup-status", "Связка не настроена", 20*time.Second)
	require.Contains(t, text(`#map-lead tr[data-item="field:lead:reception_id"]`), "Тип поля")
	require.NotContains(t, text(`select[data-item="field:lead:reception_id"]`), "Не передавать", "not for a required item")
	require.Contains(t, text(`select[data-item="field:lead:branch"]`), "Не передавать")
	shot("setup-01-not-configured")

	// Autosetup: all blocks ticked, the proposal per block, one rename.
	run("autosetup", chromedp.Click("#setup-auto", chromedp.ByQuery, in), chromedp.WaitVisible("#setup-confirm", chromedp.ByQuery, in))
	require.Equal(t, 3, count("#setup-blocks input.setup-block:checked"), "all blocks by default")
	require.Equal(t, 3, count("#setup-proposal .prop-group"))
	doctor := `#setup-proposal .prop-item[data-key="field:lead:doctor"]`
	require.Contains(t, text(doctor), "будет создано")
	require.Contains(t, text(`#setup-proposal .prop-item[data-key="pipeline:primary"]`), "будет создано")
	require.Contains(t, text(`#setup-proposal .prop-item[data-key="field:contact:phone"]`), "будет использовано: Телефон")
	run("rename «Врач»", chromedp.SetValue(doctor+" input.rename", "Лечащий врач", chromedp.ByQuery, in),
		chromedp.ScrollIntoView(doctor, chromedp.ByQuery, in))
	shot("setup-02-confirm")
	run("confirm", chromedp.Click("#setup-confirm-go", chromedp.ByQuery, in))
	waitText("#setup-status", "Связка настроена", 60*time.Second)
	require.Equal(t, 1, count("#setup-status .icon.ok"), "✅")
	require.Zero(t, count("#setup-confirm:not([hidden])"))
	require.Zero(t, count("#setup-error:not([hidden])"), "no error: %s", text("#setup-error"))
	waitText(`#map-lead tr[data-item="field:lead:doctor"]`, "Лечащий врач", 20*time.Second)
	require.Contains(t, selected("field:lead:doctor"), "Лечащий врач")
	require.Contains(t, selected("pipeline:primary"), "Первичный приём")
	require.Contains(t, selected("pipeline:repeat"), "Повторный приём")
	require.Contains(t, selected("stage:repeat:no_show"), "Не пришёл")
	run("scroll to the status", chromedp.ScrollIntoView("#setup-card", chromedp.ByQuery, in))
	shot("setup-03-configured")

	// What amoCRM has now, as our API reads it from the sandbox.
	ov := readSetup(t, ctx, in)
	require.Equal(t, "configured", ov.Status)
	var pipelines []string
	for _, p := range ov.Options.Pipelines {
		pipelines = append(pipelines, p.Name)
	}
	require.Contains(t, pipelines, "Первичный приём")
	require.Contains(t, pipelines, "Повторный приём")
	leadFields := map[string]int64{}
	for _, f := range ov.Options.Fields["lead"] {
		leadFields[f.Name] = f.ID
	}
	require.Contains(t, leadFields, "Лечащий врач", "created under the new name")
	require.NotContains(t, leadFields, "Врач", "not under the plan's name")
	require.Equal(t, leadFields["Лечащий врач"], ov.Mapping.Lead["doctor"].FieldID)
	require.Contains(t, ov.Mapping.Lead, "branch")
	version := ov.Mapping.Version

	// One mapping by hand: «Филиал» → «Не передавать», saved at once.
	run("«Филиал» → «Не передавать»", callIn(`select[data-item="field:lead:branch"]`, in,
		`function () { this.value = ''; this.dispatchEvent(new Event('change', { bubbles: true })); }`))
	waitText(`.save-status[data-for="field:lead:branch"]`, "Сохранено", 20*time.Second)
	require.Equal(t, "Не передавать", selected("field:lead:branch"))
	waitText("#setup-status", "Связка настроена", 20*time.Second)
	run("scroll to the lead card", chromedp.ScrollIntoView("#map-lead", chromedp.ByQuery, in))
	shot("setup-04-saved")

	// The responsible user: a fixed user is saved once one is chosen.
	run("responsible: one user", chromedp.Click(`input.resp-mode[value="fixed"]`, chromedp.ByQuery, in))
	waitText(`.save-status[data-for="responsible"]`, "Выберите пользователя", 10*time.Second)
	run("choose the user", callIn("#resp-user", in,
		`function () { this.value = this.options[1].value; this.dispatchEvent(new Event('change', { bubbles: true })); }`))
	waitText(`.save-status[data-for="responsible"]`, "Сохранено", 20*time.Second)
	require.NotEmpty(t, selected("responsible:user"))

	// A refused choice shows the server's reason inline and keeps the saved value.
	run("drop a required item anyway (the page offers no way; the server refuses)",
		callIn(`select[data-item="field:lead:reception_id"]`, in,
			`function () { this.value = ''; this.dispatchEvent(new Event('change', { bubbles: true })); }`))
	waitText(`.save-status[data-for="field:lead:reception_id"]`, "обязательно", 20*time.Second)
	require.Contains(t, selected("field:lead:reception_id"), "ID записи IDENT")

	// After a reload the choice is still there.
	open()
	openSettings()
	waitText("#setup-status", "Связка настроена", 20*time.Second)
	require.Equal(t, "Не передавать", selected("field:lead:branch"))
	require.Contains(t, selected("field:lead:doctor"), "Лечащий врач")
	ov = readSetup(t, ctx, in)
	require.NotContains(t, ov.Mapping.Lead, "branch", "«Не передавать» is saved")
	require.Equal(t, version+2, ov.Mapping.Version, "two changes, two new mapping versions; the refused one made none")
	require.Equal(t, "fixed", ov.Mapping.Responsible.Mode)
	require.Positive(t, ov.Mapping.Responsible.UserID)
	require.NotContains(t, selected("responsible:user"), "выберите")
	run("scroll to the responsible user", chromedp.ScrollIntoView("#map-responsible", chromedp.ByQuery, in))
	shot("setup-05-reloaded")

	// A user who is not an amoCRM admin sees the setup but changes nothing.
	userID := addSandboxUser(t, widgetURL)
	in = openWidgetFrame(t, ctx, fmt.Sprintf("%s?user_id=%d", widgetURL, userID))
	openSettings()
	waitText("#setup-status", "Связка настроена", 20*time.Second)
	var disabled bool
	run("autosetup disabled", chromedp.JavascriptAttribute("#setup-auto", "disabled", &disabled, chromedp.ByQuery, in))
	require.True(t, disabled, "«Выполнить автонастройку» is for admins")
	require.Equal(t, "Доступно администратору аккаунта amoCRM", text("#setup-auto-reason"))
	require.Zero(t, count("#setup-flex select.map-select:not([disabled])"), "every choice is read-only")
}

// setupView is the part of GET /api/app/v1/setup the test reads.
type setupView struct {
	Status  string `json:"status"`
	Options struct {
		Pipelines []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"pipelines"`
		Fields map[string][]struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"fields"`
	} `json:"options"`
	Mapping struct {
		Version int `json:"version"`
		Lead    map[string]struct {
			FieldID int64 `json:"field_id"`
		} `json:"lead"`
		Responsible struct {
			Mode   string `json:"mode"`
			UserID int64  `json:"user_id"`
		} `json:"responsible"`
	} `json:"mapping"`
}

// readSetup fetches GET /api/app/v1/setup from inside the widget's frame
// with the page's own session token.
func readSetup(t *testing.T, ctx context.Context, in chromedp.QueryOption) setupView {
	t.Helper()
	var body string
	require.NoError(t, chromedp.Run(ctx, evalIn("#app", in, `function () {
		var doc = this.ownerDocument;
		var token = doc.querySelector('meta[name="svyazka-session"]').content;
		return doc.defaultView.fetch('/api/app/v1/setup', { headers: { 'Authorization': 'Bearer ' + token } })
			.then(function (r) { return r.text(); });
	}`, &body)), "GET /api/app/v1/setup")
	var v setupView
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

// evalIn is callIn that waits for fn's promise and stores its string result
// in out.
func evalIn(sel string, in chromedp.QueryOption, fn string, out *string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var nodes []*cdp.Node
		if err := chromedp.Nodes(sel, &nodes, chromedp.ByQuery, in).Do(ctx); err != nil {
			return err
		}
		obj, err := dom.ResolveNode().WithNodeID(nodes[0].NodeID).Do(ctx)
		if err != nil {
			return err
		}
		res, exc, err := runtime.CallFunctionOn(fn).WithObjectID(obj.ObjectID).WithAwaitPromise(true).WithReturnByValue(true).Do(ctx)
		if err == nil && exc != nil {
			err = exc
		}
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(res.Value), out)
	})
}

// openWidgetFrame opens the sandbox's widget settings page at url and
// returns the query option for the widget's iframe once our page is loaded
// in it. The iframe node found first may still hold its initial blank
// document (chromedp keeps that one), so it is looked up again until the
// page's tabs answer inside it.
func openWidgetFrame(t *testing.T, ctx context.Context, url string) chromedp.QueryOption {
	t.Helper()
	require.NoError(t, chromedp.Run(ctx, chromedp.Navigate(url), chromedp.WaitVisible("#list_page_holder iframe", chromedp.ByQuery)),
		"open amoCRM settings page")
	var in chromedp.QueryOption
	require.Eventually(t, func() bool {
		var iframes []*cdp.Node
		if chromedp.Run(ctx, chromedp.Nodes("#list_page_holder iframe", &iframes, chromedp.ByQuery)) != nil {
			return false
		}
		in = chromedp.FromNode(iframes[0])
		try, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return chromedp.Run(try, chromedp.WaitReady(".tabs", chromedp.ByQuery, in)) == nil
	}, 30*time.Second, 200*time.Millisecond, "the widget iframe never loaded our page")
	return in
}
