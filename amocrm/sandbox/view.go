package sandbox

import (
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

var viewTemplates = template.Must(template.New("layout").Parse(`{{define "head"}}<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>{{.}} — amoCRM sandbox</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#1e3a5f;color:#fff;padding:10px 20px}header a{color:#fff;text-decoration:none}
main{padding:16px 20px}table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
.board{display:flex;gap:10px;overflow-x:auto;align-items:flex-start}.col{min-width:200px;background:#fff;border-radius:4px}
.col h3{margin:0;padding:8px;font-size:14px;border-bottom:4px solid #ccc}.card{margin:6px;padding:6px;border:1px solid #e3e3e3;border-radius:3px;font-size:13px}
.muted{color:#888;font-size:12px}nav a{margin-right:12px}
</style></head><body><header><a href="/">amoCRM sandbox</a></header><main>{{end}}
{{define "index"}}{{template "head" "Accounts"}}<h1>Accounts</h1>
{{if .}}<table><tr><th>ID</th><th>Subdomain</th><th>Users</th><th>Contacts</th><th>Leads</th><th>Paid</th></tr>
{{range .}}<tr><td><a href="/accounts/{{.ID}}">{{.ID}}</a></td><td>{{.Subdomain}}</td><td>{{.Users}}</td><td>{{.Contacts}}</td><td>{{.Leads}}</td><td>{{.Paid}}</td></tr>{{end}}
</table>{{else}}<p>No accounts yet: <code>POST /_sandbox/accounts</code>.</p>{{end}}</main></body></html>{{end}}
{{define "account"}}{{template "head" .Subdomain}}<h1>{{.Subdomain}} <span class="muted">#{{.ID}}</span></h1>
<p><a href="/accounts/{{.ID}}/settings/widget">Настройки › виджет</a></p>
<nav>{{range .Pipelines}}<a href="?pipeline={{.ID}}">{{.Name}}{{if .IsMain}} ★{{end}}</a>{{end}}</nav>
<h2>{{.Pipeline.Name}}</h2><div class="board">{{range .Columns}}<div class="col"><h3 style="border-color:{{.Color}}">{{.Name}} <span class="muted">{{len .Leads}}</span></h3>
{{range .Leads}}<div class="card"><b>{{.Name}}</b><br><span class="muted">#{{.ID}} · {{.Price}} ₽ · {{.Contacts}}</span></div>{{end}}</div>{{end}}</div>
<h2>Contacts</h2>{{if .Contacts}}<table><tr><th>ID</th><th>Name</th><th>Fields</th></tr>
{{range .Contacts}}<tr><td>{{.ID}}</td><td>{{.Name}}</td><td>{{.Fields}}</td></tr>{{end}}</table>{{else}}<p class="muted">None.</p>{{end}}
<h2>Users</h2><table><tr><th>ID</th><th>Name</th><th>Admin</th><th>Active</th><th>Free</th></tr>
{{range .Users}}<tr><td>{{.ID}}</td><td>{{.Name}}</td><td>{{.IsAdmin}}</td><td>{{.IsActive}}</td><td>{{.IsFree}}</td></tr>{{end}}</table>
</main></body></html>{{end}}`))

type viewAccountRow struct {
	ID                     int64
	Subdomain              string
	Users, Contacts, Leads int
	Paid                   bool
}

func (s *Sandbox) viewIndex(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var rows []viewAccountRow
	for _, id := range sortedIDs(s.st.Accounts) {
		a := s.st.Accounts[id]
		rows = append(rows, viewAccountRow{ID: a.ID, Subdomain: a.Subdomain, Users: len(a.Users), Contacts: len(a.Contacts), Leads: len(a.Leads), Paid: !a.Unpaid})
	}
	s.mu.Unlock()
	s.render(w, "index", rows)
}

type viewCard struct {
	ID       int64
	Name     string
	Price    int64
	Contacts string
}

type viewColumn struct {
	Name, Color string
	Leads       []viewCard
}

type viewContact struct {
	ID           int64
	Name, Fields string
}

func (s *Sandbox) viewAccount(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	acc := s.st.Accounts[id]
	if acc == nil {
		http.NotFound(w, r)
		return
	}
	pl := acc.mainPipeline()
	if pid, err := strconv.ParseInt(r.URL.Query().Get("pipeline"), 10, 64); err == nil && acc.pipeline(pid) != nil {
		pl = acc.pipeline(pid)
	}
	pl.sortStatuses()
	var columns []viewColumn
	for _, st := range pl.Statuses {
		col := viewColumn{Name: st.Name, Color: st.Color}
		for _, lid := range sortedIDs(acc.Leads) {
			l := acc.Leads[lid]
			if l.PipelineID != pl.ID || l.StatusID != st.ID {
				continue
			}
			var names []string
			for _, link := range l.Contacts {
				if ct := acc.Contacts[link.ID]; ct != nil {
					names = append(names, ct.Name)
				}
			}
			contacts := strings.Join(names, ", ")
			if contacts == "" {
				contacts = "no contact"
			}
			col.Leads = append(col.Leads, viewCard{ID: l.ID, Name: l.Name, Price: l.Price, Contacts: contacts})
		}
		columns = append(columns, col)
	}
	var contacts []viewContact
	for _, cid := range sortedIDs(acc.Contacts) {
		ct := acc.Contacts[cid]
		var parts []string
		for _, fv := range ct.Fields {
			f := acc.field("contacts", fv.FieldID)
			if f == nil {
				continue
			}
			var vals []string
			for _, v := range fv.Values {
				vals = append(vals, fieldValueText(v))
			}
			parts = append(parts, f.Name+": "+strings.Join(vals, ", "))
		}
		contacts = append(contacts, viewContact{ID: ct.ID, Name: ct.Name, Fields: strings.Join(parts, "; ")})
	}
	s.render(w, "account", map[string]any{
		"ID": acc.ID, "Subdomain": acc.Subdomain, "Pipelines": acc.Pipelines, "Pipeline": pl,
		"Columns": columns, "Contacts": contacts, "Users": acc.Users,
	})
}

func (s *Sandbox) render(w http.ResponseWriter, name string, data any) {
	var sb strings.Builder
	if err := viewTemplates.ExecuteTemplate(&sb, name, data); err != nil {
		s.log.Error("sandbox: render view", "template", name, "err", err)
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	writeHTML(w, http.StatusOK, sb.String())
}
