// Package widget holds the amoCRM widget: the archive sources in amo/ (what
// amoCRM loads into its pages), their builder and validator, and the settings
// page UI in ui/ that the widget frames.
package widget

import (
	"archive/zip"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed all:amo
var sources embed.FS

// Sources returns the archive sources as shipped (backend URL not filled in),
// rooted at the archive root: manifest.json, script.js, i18n/, images/.
func Sources() fs.FS {
	sub, _ := fs.Sub(sources, "amo")
	return sub
}

// backendPlaceholder in the text sources is replaced by the backend URL at build time.
const backendPlaceholder = "__SVYAZKA_BACKEND_URL__"

// checkBackendURL accepts an absolute http(s) URL without a trailing slash,
// query or fragment: script.js appends paths such as /api/widget/v1/session.
func checkBackendURL(backendURL string) error {
	u, err := url.Parse(backendURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(backendURL, "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("widget: backend URL %q must be an absolute http(s) URL without a trailing slash", backendURL)
	}
	return nil
}

// file returns one archive file with the backend URL substituted.
func file(name, backendURL string) ([]byte, error) {
	b, err := fs.ReadFile(Sources(), name)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(name, ".js") || strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ".css") {
		b = bytes.ReplaceAll(b, []byte(backendPlaceholder), []byte(backendURL))
	}
	return b, nil
}

// ScriptJS returns script.js with the backend URL filled in, for the API to
// serve so the amoCRM sandbox can load the live widget. It fails when
// backendURL is not an absolute http(s) URL without a trailing slash.
func ScriptJS(backendURL string) ([]byte, error) {
	if err := checkBackendURL(backendURL); err != nil {
		return nil, err
	}
	return file("script.js", backendURL)
}

// BuildArchive writes widget.zip to w: every source file at the archive root
// (no wrapping folder, no directory entries), UTF-8 text as shipped, the
// backend URL filled in; the same inputs give the same bytes. It fails when
// backendURL is not an absolute http(s) URL without a trailing slash, or on a
// write error. Callers should run ValidateZip on the result before uploading.
func BuildArchive(w io.Writer, backendURL string) error {
	if err := checkBackendURL(backendURL); err != nil {
		return err
	}
	var names []string
	err := fs.WalkDir(Sources(), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	zw := zip.NewWriter(w)
	// A fixed time keeps the archive byte-identical between builds.
	stamp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, name := range names {
		b, err := file(name, backendURL)
		if err != nil {
			return err
		}
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: stamp})
		if err != nil {
			return err
		}
		if _, err := fw.Write(b); err != nil {
			return err
		}
	}
	return zw.Close()
}

// contentTypes are the types Files sends for the archive's file kinds.
var contentTypes = map[string]string{".js": "application/javascript; charset=utf-8", ".json": "application/json; charset=utf-8",
	".css": "text/css; charset=utf-8", ".png": "image/png"}

// Files serves the archive's files as amoCRM hosts them (the sandbox loads
// the widget from here), the backend URL filled in; unknown paths get 404.
// backendURL is not checked here: the config validates PUBLIC_URL at start.
func Files(backendURL string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		b, err := file(name, backendURL)
		if errors.Is(err, fs.ErrNotExist) || name == "" || name == "." {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, "widget file unavailable", http.StatusInternalServerError)
			return
		}
		if ct := contentTypes[path.Ext(name)]; ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
}
