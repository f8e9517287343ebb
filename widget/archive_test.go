package widget_test

import (
	"archive/zip"
	"bytes"
	"image"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/widget"
)

const testBackend = "https://api.svyazka.ru"

// copySources loads the shipped sources into a map a case can break.
func copySources(t *testing.T) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	require.NoError(t, fs.WalkDir(widget.Sources(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(widget.Sources(), p)
		out[p] = &fstest.MapFile{Data: b}
		return err
	}))
	return out
}

func pngOf(t *testing.T, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, image.NewRGBA(image.Rect(0, 0, w, h))))
	return b.Bytes()
}

func fmtProblems(ps []widget.Problem) string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return strings.Join(s, "\n")
}

// requireProblem asserts that one problem names file and says want.
func requireProblem(t *testing.T, ps []widget.Problem, file, want string) {
	t.Helper()
	for _, p := range ps {
		if p.File == file && strings.Contains(p.Message, want) {
			return
		}
	}
	t.Fatalf("no problem for %s saying %q; got:\n%s", file, want, fmtProblems(ps))
}

func unzip(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		data, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		out[f.Name] = data
	}
	return out
}

func zipOf(t *testing.T, files map[string][]byte, order ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range order {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = w.Write(files[name])
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestShippedSourcesAreValid(t *testing.T) {
	t.Parallel()
	require.Empty(t, widget.Validate(widget.Sources()), "the sources in widget/amo break amoCRM's rules")
}

func TestBuildArchive(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	require.NoError(t, widget.BuildArchive(&buf, testBackend))
	require.Empty(t, fmtProblems(widget.ValidateZip(bytes.NewReader(buf.Bytes()), int64(buf.Len()))))

	files := unzip(t, buf.Bytes())
	for _, want := range []string{"manifest.json", "script.js", "style.css", "i18n/ru.json", "i18n/en.json",
		"images/logo.png", "images/logo_main.png", "images/logo_medium.png", "images/logo_min.png", "images/logo_small.png",
		"images/tour_ru.png", "images/tour_en.png"} {
		require.Contains(t, files, want, "files sit at the archive root")
	}
	for name, data := range files {
		require.False(t, strings.HasPrefix(name, "amo/") || strings.HasSuffix(name, "/"), "no folder entries or wrapping folder: %s", name)
		require.NotContains(t, string(data), "__SVYAZKA_BACKEND_URL__", name)
	}
	require.Contains(t, string(files["script.js"]), "var BACKEND_URL = '"+testBackend+"';")

	var again bytes.Buffer
	require.NoError(t, widget.BuildArchive(&again, testBackend))
	require.Equal(t, buf.Bytes(), again.Bytes(), "builds are reproducible")
}

func TestBuildArchiveRejectsBadBackendURL(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "api.svyazka.ru", "/api", "https://api.svyazka.ru/", "ftp://api.svyazka.ru", "https://api.svyazka.ru?x=1", "https://"} {
		require.Error(t, widget.BuildArchive(io.Discard, bad), bad)
		_, err := widget.ScriptJS(bad)
		require.Error(t, err, bad)
	}
}

func TestScriptJS(t *testing.T) {
	t.Parallel()
	js, err := widget.ScriptJS("http://127.0.0.1:8080")
	require.NoError(t, err)
	require.Contains(t, string(js), "var BACKEND_URL = 'http://127.0.0.1:8080';")
	require.Contains(t, string(js), "BACKEND_URL + '/api/widget/v1/session'")
	require.NotContains(t, string(js), "__SVYAZKA_BACKEND_URL__")
}

func TestValidateZip(t *testing.T) {
	t.Parallel()
	var built bytes.Buffer
	require.NoError(t, widget.BuildArchive(&built, testBackend))
	good := unzip(t, built.Bytes())
	names := make([]string, 0, len(good))
	for name := range good {
		names = append(names, name)
	}

	t.Run("WrappingFolder", func(t *testing.T) {
		t.Parallel()
		wrapped := map[string][]byte{}
		var order []string
		for _, name := range names {
			wrapped["svyazka/"+name] = good[name]
			order = append(order, "svyazka/"+name)
		}
		b := zipOf(t, wrapped, order...)
		requireProblem(t, widget.ValidateZip(bytes.NewReader(b), int64(len(b))), "widget.zip", "manifest.json is not at the archive root")
	})
	t.Run("MacOSMetadata", func(t *testing.T) {
		t.Parallel()
		files := map[string][]byte{"__MACOSX/._script.js": {0}}
		for k, v := range good {
			files[k] = v
		}
		b := zipOf(t, files, append([]string{"__MACOSX/._script.js"}, names...)...)
		ps := widget.ValidateZip(bytes.NewReader(b), int64(len(b)))
		require.Len(t, ps, 1, fmtProblems(ps))
		requireProblem(t, ps, "__MACOSX/._script.js", "macOS metadata")
	})
	t.Run("PlaceholderLeft", func(t *testing.T) {
		t.Parallel()
		files := map[string][]byte{}
		for k, v := range good {
			files[k] = v
		}
		files["script.js"] = []byte(strings.Replace(string(good["script.js"]), testBackend, "__SVYAZKA_BACKEND_URL__", 1))
		b := zipOf(t, files, names...)
		requireProblem(t, widget.ValidateZip(bytes.NewReader(b), int64(len(b))), "script.js", "still holds __SVYAZKA_BACKEND_URL__")
	})
	t.Run("BOM", func(t *testing.T) {
		t.Parallel()
		files := map[string][]byte{}
		for k, v := range good {
			files[k] = v
		}
		files["i18n/ru.json"] = append([]byte("\ufeff"), good["i18n/ru.json"]...)
		b := zipOf(t, files, names...)
		requireProblem(t, widget.ValidateZip(bytes.NewReader(b), int64(len(b))), "i18n/ru.json", "byte-order mark")
	})
	t.Run("NotAZip", func(t *testing.T) {
		t.Parallel()
		requireProblem(t, widget.ValidateZip(strings.NewReader("nope"), 4), "widget.zip", "is not a zip archive")
	})
}

func TestValidateCatchesDefects(t *testing.T) {
	t.Parallel()
	edit := func(name string, fn func(string) string) func(fstest.MapFS) {
		return func(m fstest.MapFS) { m[name] = &fstest.MapFile{Data: []byte(fn(string(m[name].Data)))} }
	}
	appendJS := func(code string) func(fstest.MapFS) {
		return edit("script.js", func(s string) string { return s + code })
	}
	replace := func(name, old, new string) func(fstest.MapFS) {
		return edit(name, func(s string) string {
			if !strings.Contains(s, old) {
				panic(name + " no longer contains " + old)
			}
			return strings.Replace(s, old, new, 1)
		})
	}
	for caseName, tc := range map[string]struct {
		breakIt    func(fstest.MapFS)
		file, want string
	}{
		// Files and images.
		"MissingLogo":        {func(m fstest.MapFS) { delete(m, "images/logo_min.png") }, "images/logo_min.png", "required file is missing"},
		"MissingScript":      {func(m fstest.MapFS) { delete(m, "script.js") }, "script.js", "required file is missing"},
		"WrongLogoSize":      {func(m fstest.MapFS) { m["images/logo.png"] = &fstest.MapFile{Data: pngOf(t, 100, 100)} }, "images/logo.png", "is 100×100; amoCRM requires 130×100"},
		"LogoNotAnImage":     {func(m fstest.MapFS) { m["images/logo_small.png"] = &fstest.MapFile{Data: []byte("GIF")} }, "images/logo_small.png", "is not a PNG, JPEG or GIF"},
		"HeavyImage":         {func(m fstest.MapFS) { m["images/tour_ru.png"] = &fstest.MapFile{Data: make([]byte, 301<<10)} }, "images/tour_ru.png", "is 301 KB"},
		"TourImageMissing":   {func(m fstest.MapFS) { delete(m, "images/tour_en.png") }, "manifest.json", "tour image /images/tour_en.png (en) is not in the archive"},
		"TourImageWrongSize": {func(m fstest.MapFS) { m["images/tour_en.png"] = &fstest.MapFile{Data: pngOf(t, 800, 500)} }, "images/tour_en.png", "requires 1188×616"},
		"UnusedFile":         {func(m fstest.MapFS) { m["images/old_logo.png"] = &fstest.MapFile{Data: pngOf(t, 1, 1)} }, "images/old_logo.png", "is not used by the widget"},
		"StrayFile":          {func(m fstest.MapFS) { m[".DS_Store"] = &fstest.MapFile{Data: []byte{0}} }, ".DS_Store", "is not used by the widget"},

		// Encoding.
		"BOMInManifest": {edit("manifest.json", func(s string) string { return "\ufeff" + s }), "manifest.json", "starts with a UTF-8 byte-order mark"},
		"CRLFInScript":  {edit("script.js", func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }), "script.js", "has CR (Windows or Mac) line endings"},
		"NotUTF8":       {edit("i18n/ru.json", func(s string) string { return s + "\xff" }), "i18n/ru.json", "is not valid UTF-8"},

		// Manifest.
		"ManifestNotJSON":    {edit("manifest.json", func(s string) string { return s + "," }), "manifest.json", "is not valid JSON"},
		"InterfaceVersion":   {replace("manifest.json", `"interface_version": 2`, `"interface_version": 1`), "manifest.json", "widget.interface_version must be 2"},
		"NoAdvancedLocation": {replace("manifest.json", `"settings", "advanced_settings"`, `"settings"`), "manifest.json", `locations must include "advanced_settings"`},
		"UnknownLocation":    {replace("manifest.json", `"settings", "advanced_settings"`, `"settings", "advanced_settings", "lcard-2"`), "manifest.json", `location "lcard-2" is not one amoCRM knows`},
		"NoAdvancedTitle":    {replace("manifest.json", `"title": "advanced.title"`, `"title": ""`), "manifest.json", "advanced.title is required"},
		"NoTour":             {replace("manifest.json", `"is_tour": true`, `"is_tour": false`), "manifest.json", "tour.is_tour must be true"},
		"NoSupport":          {replace("manifest.json", `"support": {`, `"support_": {`), "manifest.json", "widget.support needs an https link or an e-mail"},
		"BadVersion":         {replace("manifest.json", `"version": "1.0.0"`, `"version": "1.0"`), "manifest.json", `widget.version "1.0" must look like 1.0.0`},
		"NoInstallation":     {replace("manifest.json", `"installation": true,`, ``), "manifest.json", "widget.installation is required"},
		"UnknownLocale":      {replace("manifest.json", `"locale": ["ru", "en"]`, `"locale": ["ru", "en", "de"]`), "manifest.json", `widget.locale "de" is not one of`},
		"TwoCustomSettings": {replace("manifest.json", `"settings": {}`,
			`"settings": {"a": {"name": "settings.intro", "type": "custom"}, "b": {"name": "settings.open", "type": "custom"}}`), "manifest.json", "at most one custom field"},
		"BadSettingType": {replace("manifest.json", `"settings": {}`, `"settings": {"a": {"name": "settings.intro", "type": "checkbox"}}`), "manifest.json", `settings.a.type "checkbox"`},

		// i18n.
		"I18nKeyMissingEn":   {replace("i18n/en.json", `"retry": "Retry",`, ""), "i18n/en.json", `lacks the key "errors.retry" that i18n/ru.json has`},
		"I18nKeyMissingRu":   {replace("i18n/ru.json", `"retry": "Повторить",`, ""), "i18n/ru.json", `lacks the key "errors.retry" that i18n/en.json has`},
		"ManifestKeyMissing": {replace("i18n/ru.json", `"title": "Связка: интеграция с IDENT"`, `"name": "x"`), "i18n/ru.json", `lacks the key "advanced.title" the manifest uses`},
		"LocaleFileMissing":  {func(m fstest.MapFS) { delete(m, "i18n/en.json") }, "i18n/en.json", "required file is missing"},
		"RussianInEn":        {replace("i18n/en.json", `"retry": "Retry"`, `"retry": "Повторить"`), "i18n/en.json", "has Russian text"},
		"RuDomainInEn":       {replace("i18n/en.json", `"retry": "Retry"`, `"retry": "Retry or mail help@svyazka.ru"`), "i18n/en.json", "mentions a .ru address"},
		"AmoCRMInName":       {replace("i18n/en.json", `"name": "Svyazka"`, `"name": "Svyazka for amoCRM"`), "i18n/en.json", "must not contain amoCRM"},

		// script.js moderation lint.
		"NotAMD":           {edit("script.js", func(s string) string { return "window.x = 1;\n" + s }), "script.js", "must be an AMD module"},
		"OutsideDep":       {replace("script.js", "define(['jquery']", "define(['jquery', 'https://cdn.example.com/lib.js']"), "script.js", "from an outside host"},
		"MissingCallback":  {replace("script.js", "advancedSettings: function", "advanced: function"), "script.js", "callback advancedSettings is not defined"},
		"RenderNotTrue":    {replace("script.js", "render: function () {\n        return true;", "render: function () {\n        return false;"), "script.js", "callback render must return true"},
		"Eval":             {appendJS("\neval('1');\n"), "script.js", "uses eval"},
		"NewFunction":      {appendJS("\nvar f = new Function('return 1');\n"), "script.js", "uses eval, new Function"},
		"StringTimer":      {appendJS("\nsetTimeout('go()', 10);\n"), "script.js", "string timer"},
		"SyncXHR":          {replace("script.js", "dataType: 'json'", "dataType: 'json',\n        async: false"), "script.js", "makes a synchronous request"},
		"SyncXHROpen":      {appendJS("\nvar x = new XMLHttpRequest(); x.open('GET', '/a', false);\n"), "script.js", "makes a synchronous request"},
		"APICallInForLoop": {appendJS("\nfor (var i = 0; i < 3; i++) { self.$authorizedAjax({url: 'x'}); }\n"), "script.js", "calls the API inside a loop"},
		"APICallInForStmt": {appendJS("\nfor (var i = 0; i < 3; i++) self.crm_post('/x', {});\n"), "script.js", "calls the API inside a loop"},
		"APICallInWhile":   {appendJS("\nwhile (more) {\n  $.ajax({url: '/x'});\n}\n"), "script.js", "calls the API inside a loop"},
		"APICallInEach":    {appendJS("\n$('.x').each(function () { self.$authorizedAjax({url: 'x'}); });\n"), "script.js", "calls the API inside a loop"},
		"APICallInForEach": {appendJS("\nids.forEach(function (id) { self.crm_post('/x', {id: id}); });\n"), "script.js", "calls the API inside a loop"},
		"APICallPolling":   {appendJS("\nsetInterval(function () { self.$authorizedAjax({url: 'x'}); }, 1000);\n"), "script.js", "calls the API inside a loop"},
		"ScriptInjection":  {appendJS("\n$('body').append('<script src=x></script>');\n"), "script.js", "injects a <script> tag"},
		"ScriptElement":    {appendJS("\ndocument.head.appendChild(document.createElement('script'));\n"), "script.js", "injects a <script> tag"},
		"Alert":            {appendJS("\nalert('hi');\n"), "script.js", "calls alert()"},
		"ConsoleLog":       {appendJS("\nconsole.log('hi');\n"), "script.js", "calls console.log"},
		"Debugger":         {appendJS("\ndebugger;\n"), "script.js", "debugger statement"},
		"WritesAMOCRM":     {appendJS("\nAMOCRM.constant('x').y = 1;\nAMOCRM.widgets = {};\n"), "script.js", "writes to the global AMOCRM"},

		// style.css.
		"UnscopedCSS":      {edit("style.css", func(s string) string { return s + "\nbody { color: red; }\n" }), "style.css", `selector "body" is not scoped under .svyazka-widget`},
		"UnscopedInList":   {edit("style.css", func(s string) string { return s + "\n.svyazka-widget a, .control-select { color: red; }\n" }), "style.css", `selector ".control-select" is not scoped`},
		"LookalikeScope":   {edit("style.css", func(s string) string { return s + "\n.svyazka-widgetx { color: red; }\n" }), "style.css", `selector ".svyazka-widgetx" is not scoped`},
		"UnscopedInMedia":  {edit("style.css", func(s string) string { return s + "\n@media (max-width: 600px) { input { color: red; } }\n" }), "style.css", `selector "input" is not scoped`},
		"ImportedStyles":   {edit("style.css", func(s string) string { return "@import url(https://cdn.example.com/x.css);\n" + s }), "style.css", "uses @import"},
		"CRLFInStylesheet": {edit("style.css", func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }), "style.css", "has CR"},
	} {
		t.Run(caseName, func(t *testing.T) {
			t.Parallel()
			m := copySources(t)
			tc.breakIt(m)
			requireProblem(t, widget.Validate(m), tc.file, tc.want)
		})
	}
}

// TestValidateAllowsSafeCode guards the lint heuristics against false alarms.
func TestValidateAllowsSafeCode(t *testing.T) {
	t.Parallel()
	for caseName, code := range map[string]string{
		"LoopWithoutBracesThenCall": "\nfor (var i = 0; i < 3; i++) total += i;\nself.$authorizedAjax({url: 'x'});\n",
		"LoopKeywordsInStrings":     "\nvar s = 'for (;;) { self.crm_post(1) }';\nvar t = \"while (x) { $.ajax() }\";\n",
		"ForbiddenWordsInComments":  "\n// never eval( or alert( here; for (x) { $.ajax() }\n/* console.log('x') */\n",
		"CallAfterEach":             "\n$('.x').each(function () { $(this).hide(); });\nself.$authorizedAjax({url: 'x'});\n",
		"DebugLogging":              "\nconsole.debug('svyazka: settings opened');\n",
		"ReadsAMOCRM":               "\nvar lang = AMOCRM.lang_id; if (AMOCRM.widgets === undefined) { lang = 'ru'; }\n",
		"RussianTextInStrings":      "\nvar msg = 'Связка { подключена }';\n",
		"ConfirmMethodOnObject":     "\nvar modal = { confirm: function () {} }; modal.confirm();\n",
	} {
		t.Run(caseName, func(t *testing.T) {
			t.Parallel()
			m := copySources(t)
			m["script.js"] = &fstest.MapFile{Data: append(append([]byte{}, m["script.js"].Data...), code...)}
			require.Empty(t, fmtProblems(widget.Validate(m)))
		})
	}
	t.Run("ScopedCSSInMedia", func(t *testing.T) {
		t.Parallel()
		m := copySources(t)
		m["style.css"] = &fstest.MapFile{Data: append(append([]byte{}, m["style.css"].Data...),
			"@media (max-width: 600px) { .svyazka-widget .x, .svyazka-widget:hover { color: red; } }\n@keyframes svyazka-spin { from { opacity: 0; } to { opacity: 1; } }\n"...)}
		require.Empty(t, fmtProblems(widget.Validate(m)))
	})
	t.Run("NoStylesheet", func(t *testing.T) {
		t.Parallel()
		m := copySources(t)
		delete(m, "style.css")
		require.Empty(t, fmtProblems(widget.Validate(m)))
	})
}

func TestFilesServesSubstitutedSources(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(widget.Files("http://127.0.0.1:8080"))
	t.Cleanup(ts.Close)
	for path, want := range map[string]string{
		"/script.js":     "var BACKEND_URL = 'http://127.0.0.1:8080';",
		"/i18n/ru.json":  "Связка: интеграция с IDENT",
		"/manifest.json": `"interface_version": 2`,
	} {
		resp, err := http.Get(ts.URL + path)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, string(b), want, path)
	}
	for _, path := range []string{"/nope.js", "/../archive.go", "/"} {
		resp, err := http.Get(ts.URL + path)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
}
