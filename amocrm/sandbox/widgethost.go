package sandbox

import (
	"embed"
	"html/template"
	"net/http"
	"strconv"
)

//go:embed static
var staticFS embed.FS

var widgetPage = template.Must(template.New("widget").Parse(`<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>Настройки — {{.Title}} — amoCRM sandbox</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#1e3a5f;color:#fff;padding:10px 20px}header a{color:#fff;text-decoration:none;margin-right:14px}
.layout{display:flex;min-height:calc(100vh - 40px)}aside{width:200px;background:#fff;border-right:1px solid #ddd;padding:12px}
aside div{padding:6px 8px;border-radius:3px}aside .active{background:#e8f0f8;font-weight:600}
#work_area{flex:1;padding:0}#list_page_holder{min-height:600px}
#widget-status{font-size:12px;color:#888;padding:4px 12px}
</style></head><body>
<header><a href="/">amoCRM sandbox</a><a href="/accounts/{{.AccountID}}">{{.Subdomain}}</a> Настройки › {{.Title}} · {{.UserName}}</header>
<div class="layout"><aside><div>Общие настройки</div><div>Пользователи</div><div>Интеграции</div><div class="active">{{.Title}}</div></aside>
<div id="work_area"><div id="widget-status">loading…</div><div id="list_page_holder"></div></div></div>
<div id="widget-host" data-account-id="{{.AccountID}}" data-user-id="{{.UserID}}" data-user-name="{{.UserName}}"
 data-subdomain="{{.Subdomain}}" data-widget-url="{{.WidgetURL}}" data-lang="ru"></div>
<script src="/static/jquery-3.7.1.min.js"></script>
<script src="/static/widget-host.js"></script>
</body></html>`))

// viewWidgetSettings is the account's Settings page for the installed widget
// (its advanced_settings location): it loads the widget from cfg.WidgetURL and
// lets it draw into #list_page_holder, as amoCRM does. ?user_id= picks the
// amoCRM user (the admin by default).
func (s *Sandbox) viewWidgetSettings(w http.ResponseWriter, r *http.Request) {
	if s.cfg.WidgetURL == "" {
		http.Error(w, "no widget configured: start the sandbox with WidgetURL (--widget-url)", http.StatusNotFound)
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	acc := s.st.Accounts[id]
	if acc == nil {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	u := acc.admin()
	if uid, err := strconv.ParseInt(r.URL.Query().Get("user_id"), 10, 64); err == nil && acc.user(uid) != nil {
		u = acc.user(uid)
	}
	data := map[string]any{"AccountID": acc.ID, "Subdomain": acc.Subdomain, "UserID": u.ID, "UserName": u.Name,
		"WidgetURL": s.cfg.WidgetURL, "Title": s.cfg.WidgetTitle}
	s.mu.Unlock()
	if data["Title"] == "" {
		data["Title"] = "Виджет"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = widgetPage.Execute(w, data)
}
