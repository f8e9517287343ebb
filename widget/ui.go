package widget

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"time"
)

//go:embed ui
var uiFS embed.FS

var pages = template.Must(template.ParseFS(uiFS, "ui/*.html"))

// Assets serves the settings page's static files (CSS, JS, icons).
func Assets() http.Handler {
	sub, _ := fs.Sub(uiFS, "ui/static")
	return http.FileServer(http.FS(sub))
}

// Pages renders the settings page shown in the iframe inside amoCRM.
type Pages struct{}

// RenderApp writes the settings page for a session. The session token goes
// into a meta tag the page's script reads; it never lands in a URL or cookie.
func (Pages) RenderApp(w http.ResponseWriter, sessionToken string, expiresAt time.Time) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	return pages.ExecuteTemplate(w, "app.html", map[string]any{"Session": sessionToken, "ExpiresAt": expiresAt.UTC().Format(time.RFC3339)})
}

// RenderMessage writes a small page with a message: an expired link (status ≥ 400) or an install result.
func (Pages) RenderMessage(w http.ResponseWriter, status int, message string) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return pages.ExecuteTemplate(w, "message.html", map[string]any{"Message": message, "OK": status < 300})
}
