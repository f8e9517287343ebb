package widget_test

import (
	"archive/zip"
	"bytes"
	"image"
	"image/png"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/widget"
)

// copySources loads the shipped sources into a map the cases can break.
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

func TestShippedSourcesAreValid(t *testing.T) {
	t.Parallel()
	require.Empty(t, widget.Validate(widget.Sources()))
}

func TestBuildArchive(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	require.NoError(t, widget.BuildArchive(&buf, "https://api.svyazka.ru"))
	require.Empty(t, widget.ValidateZip(bytes.NewReader(buf.Bytes()), int64(buf.Len())))

	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	names := map[string]*zip.File{}
	for _, f := range zr.File {
		require.False(t, strings.Contains(f.Name, "amo/"), "files sit at the archive root: %s", f.Name)
		names[f.Name] = f
	}
	for _, want := range []string{"manifest.json", "script.js", "i18n/ru.json", "i18n/en.json", "images/logo.png", "images/logo_main.png", "images/logo_medium.png", "images/logo_min.png", "images/logo_small.png"} {
		require.Contains(t, names, want)
	}
	rc, err := names["script.js"].Open()
	require.NoError(t, err)
	var js bytes.Buffer
	_, err = js.ReadFrom(rc)
	require.NoError(t, err)
	require.Contains(t, js.String(), "var BACKEND_URL = 'https://api.svyazka.ru';")
	require.NotContains(t, js.String(), "__SVYAZKA_BACKEND_URL__")

	var again bytes.Buffer
	require.NoError(t, widget.BuildArchive(&again, "https://api.svyazka.ru"))
	require.Equal(t, buf.Bytes(), again.Bytes(), "builds are reproducible")

	for _, bad := range []string{"", "api.svyazka.ru", "https://api.svyazka.ru/", "ftp://x"} {
		require.Error(t, widget.BuildArchive(&bytes.Buffer{}, bad), bad)
	}
}

func TestValidateZipRejectsAFolder(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range []string{"svyazka/manifest.json", "__MACOSX/._script.js"} {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, _ = w.Write([]byte("{}"))
	}
	require.NoError(t, zw.Close())
	problems := widget.ValidateZip(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.Contains(t, fmtProblems(problems), "manifest.json is not at the archive root")
	require.Contains(t, fmtProblems(problems), "__MACOSX/._script.js: must not be in the archive")
}

func pngOf(t *testing.T, w, h int) []byte {
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

func TestValidateCatchesDefects(t *testing.T) {
	t.Parallel()
	edit := func(name string, fn func(string) string) func(fstest.MapFS) {
		return func(m fstest.MapFS) { m[name] = &fstest.MapFile{Data: []byte(fn(string(m[name].Data)))} }
	}
	for caseName, tc := range map[string]struct {
		breakIt func(fstest.MapFS)
		want    string
	}{
		"MissingLogo":   {func(m fstest.MapFS) { delete(m, "images/logo_min.png") }, "images/logo_min.png: required file is missing"},
		"WrongLogoSize": {func(m fstest.MapFS) { m["images/logo.png"] = &fstest.MapFile{Data: pngOf(t, 100, 100)} }, "images/logo.png: is 100×100; amoCRM requires 130×100"},
		"HeavyImage":    {func(m fstest.MapFS) { m["images/big.png"] = &fstest.MapFile{Data: make([]byte, 301<<10)} }, "images/big.png: is 301 KB"},
		"Eval":          {edit("script.js", func(s string) string { return s + "\neval('1');\n" }), "script.js: uses eval"},
		"NewFunction":   {edit("script.js", func(s string) string { return s + "\nvar f = new Function('return 1');\n" }), "script.js: uses eval or new Function"},
		"SyncXHR": {edit("script.js", func(s string) string {
			return strings.Replace(s, "dataType: 'json'", "dataType: 'json', async: false", 1)
		}), "script.js: makes a synchronous request"},
		"APICallInLoop": {edit("script.js", func(s string) string {
			return s + "\nfor (var i = 0; i < 3; i++) { self.$authorizedAjax({url: 'x'}); }\n"
		}), "script.js: calls the API inside a loop"},
		"APICallInEach":   {edit("script.js", func(s string) string { return s + "\nids.forEach(function (id) { self.crm_post('/x', {id: id}); });\n" }), "script.js: calls the API inside a loop"},
		"ScriptInjection": {edit("script.js", func(s string) string { return s + "\n$('body').append('<script src=x></script>');\n" }), "script.js: injects a <script> tag"},
		"NotAMD":          {edit("script.js", func(s string) string { return "window.x = 1;\n" + s }), "script.js: must be an AMD module"},
		"MissingCallback": {edit("script.js", func(s string) string {
			return strings.Replace(s, "advancedSettings: function", "advanced: function", 1)
		}), "script.js: callback advancedSettings is not defined"},
		"I18nKeyMissingEn": {edit("i18n/en.json", func(s string) string { return strings.Replace(s, `"retry": "Retry",`, "", 1) }), `i18n/en.json: lacks the key "errors.retry" that i18n/ru.json has`},
		"ManifestKeyMissing": {edit("i18n/ru.json", func(s string) string {
			return strings.Replace(s, `"title": "Связка: интеграция с IDENT"`, `"name": "x"`, 1)
		}), `i18n/ru.json: lacks the key "advanced.title" the manifest uses`},
		"BOMInManifest": {edit("manifest.json", func(s string) string { return "\ufeff" + s }), "manifest.json: starts with a UTF-8 byte-order mark"},
		"CRLFInScript":  {edit("script.js", func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }), "script.js: has CR line endings"},
		"UnscopedCSS":   {edit("style.css", func(s string) string { return s + "\nbody { color: red; }\n" }), `style.css: selector "body" is not scoped under .svyazka-widget`},
		"InterfaceVersion": {edit("manifest.json", func(s string) string {
			return strings.Replace(s, `"interface_version": 2`, `"interface_version": 1`, 1)
		}), "manifest.json: widget.interface_version must be 2"},
		"NoAdvancedLocation": {edit("manifest.json", func(s string) string { return strings.Replace(s, `"settings", "advanced_settings"`, `"settings"`, 1) }), `manifest.json: locations must include "advanced_settings"`},
		"TourImageMissing":   {func(m fstest.MapFS) { delete(m, "images/tour_en.png") }, "manifest.json: tour image /images/tour_en.png (en) is not in the archive"},
		"NoTour":             {edit("manifest.json", func(s string) string { return strings.Replace(s, `"is_tour": true`, `"is_tour": false`, 1) }), "manifest.json: tour.is_tour must be true"},
	} {
		t.Run(caseName, func(t *testing.T) {
			t.Parallel()
			m := copySources(t)
			tc.breakIt(m)
			require.Contains(t, fmtProblems(widget.Validate(m)), tc.want)
		})
	}
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
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, b.String(), want, path)
	}
	for _, path := range []string{"/nope.js", "/../archive.go", "/"} {
		resp, err := http.Get(ts.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
}
