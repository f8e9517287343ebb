package sandbox

import (
	"net/http"
	"slices"
	"strings"
)

// apiRoutes is the table of the amoCRM endpoints the sandbox emulates.
func (s *Sandbox) apiRoutes() []route {
	r := func(method, pattern string, h func(*call)) route {
		return route{method: method, pattern: pattern, segs: strings.Split(strings.Trim(pattern, "/"), "/"), h: h}
	}
	pub := func(method, pattern string, h func(*call)) route {
		rt := r(method, pattern, h)
		rt.public = true
		return rt
	}
	notesOf := func(patch bool) func(*call) { return func(c *call) { c.writeNotes(patch) } }
	links := func(unlink bool) func(*call) { return func(c *call) { c.changeLinks(unlink) } }
	onlyEntities := func(allowed []string, h func(*call)) func(*call) {
		return func(c *call) {
			if !slices.Contains(allowed, c.params["entity"]) {
				c.fail(http.StatusNotFound, "Not found")
				return
			}
			h(c)
		}
	}
	crm := []string{"leads", "contacts", "companies", "customers"}
	linked := []string{"leads", "contacts"}
	withFields := []string{"leads", "contacts", "companies", "customers"}
	return []route{
		pub(http.MethodPost, "/oauth2/access_token", func(c *call) { c.s.accessToken(c) }),
		pub(http.MethodGet, "/oauth2/account/current/subdomain", func(c *call) { c.s.currentSubdomain(c) }),

		r(http.MethodGet, "/api/v4/account", (*call).getAccount),
		r(http.MethodGet, "/api/v4/users", (*call).listUsers),
		r(http.MethodPost, "/api/v4/users", (*call).createUsers),
		r(http.MethodGet, "/api/v4/users/{id}", (*call).getUser),

		r(http.MethodGet, "/api/v4/leads/pipelines", (*call).listPipelines),
		r(http.MethodPost, "/api/v4/leads/pipelines", (*call).createPipelines),
		r(http.MethodGet, "/api/v4/leads/pipelines/{id}", (*call).getPipeline),
		r(http.MethodPatch, "/api/v4/leads/pipelines/{id}", (*call).patchPipeline),
		r(http.MethodDelete, "/api/v4/leads/pipelines/{id}", (*call).deletePipeline),
		r(http.MethodGet, "/api/v4/leads/pipelines/{pipeline_id}/statuses", (*call).listStatuses),
		r(http.MethodPost, "/api/v4/leads/pipelines/{pipeline_id}/statuses", (*call).createStatuses),
		r(http.MethodGet, "/api/v4/leads/pipelines/{pipeline_id}/statuses/{id}", (*call).getStatus),
		r(http.MethodPatch, "/api/v4/leads/pipelines/{pipeline_id}/statuses/{id}", (*call).patchStatus),
		r(http.MethodDelete, "/api/v4/leads/pipelines/{pipeline_id}/statuses/{id}", (*call).deleteStatus),

		r(http.MethodPost, "/api/v4/leads/complex", (*call).complexLeads),
		r(http.MethodGet, "/api/v4/leads", leadKind.list),
		r(http.MethodPost, "/api/v4/leads", leadKind.create),
		r(http.MethodPatch, "/api/v4/leads", leadKind.patch),
		r(http.MethodGet, "/api/v4/leads/{id}", leadKind.get),
		r(http.MethodPatch, "/api/v4/leads/{id}", leadKind.patch),
		r(http.MethodGet, "/api/v4/contacts", contactKind.list),
		r(http.MethodPost, "/api/v4/contacts", contactKind.create),
		r(http.MethodPatch, "/api/v4/contacts", contactKind.patch),
		r(http.MethodGet, "/api/v4/contacts/{id}", contactKind.get),
		r(http.MethodPatch, "/api/v4/contacts/{id}", contactKind.patch),

		r(http.MethodGet, "/api/v4/{entity}/custom_fields", onlyEntities(withFields, (*call).listFields)),
		r(http.MethodPost, "/api/v4/{entity}/custom_fields", onlyEntities(withFields, (*call).createFields)),
		r(http.MethodPatch, "/api/v4/{entity}/custom_fields", onlyEntities(withFields, (*call).patchFields)),
		r(http.MethodGet, "/api/v4/{entity}/custom_fields/{id}", onlyEntities(withFields, (*call).getField)),
		r(http.MethodPatch, "/api/v4/{entity}/custom_fields/{id}", onlyEntities(withFields, (*call).patchFields)),
		r(http.MethodDelete, "/api/v4/{entity}/custom_fields/{id}", onlyEntities(withFields, (*call).deleteField)),

		r(http.MethodGet, "/api/v4/{entity}/links", onlyEntities(linked, (*call).listLinks)),
		r(http.MethodPost, "/api/v4/{entity}/link", onlyEntities(linked, links(false))),
		r(http.MethodPost, "/api/v4/{entity}/unlink", onlyEntities(linked, links(true))),
		r(http.MethodGet, "/api/v4/{entity}/{id}/links", onlyEntities(linked, (*call).listLinks)),
		r(http.MethodPost, "/api/v4/{entity}/{id}/link", onlyEntities(linked, links(false))),
		r(http.MethodPost, "/api/v4/{entity}/{id}/unlink", onlyEntities(linked, links(true))),

		r(http.MethodGet, "/api/v4/{entity}/notes", onlyEntities(linked, (*call).listNotes)),
		r(http.MethodPost, "/api/v4/{entity}/notes", onlyEntities(linked, notesOf(false))),
		r(http.MethodPatch, "/api/v4/{entity}/notes", onlyEntities(linked, notesOf(true))),
		r(http.MethodGet, "/api/v4/{entity}/notes/{id}", onlyEntities(linked, (*call).getNote)),
		r(http.MethodPatch, "/api/v4/{entity}/notes/{id}", onlyEntities(linked, notesOf(true))),
		r(http.MethodGet, "/api/v4/{entity}/{entity_id}/notes", onlyEntities(linked, (*call).listNotes)),
		r(http.MethodPost, "/api/v4/{entity}/{entity_id}/notes", onlyEntities(linked, notesOf(false))),
		r(http.MethodGet, "/api/v4/{entity}/{entity_id}/notes/{id}", onlyEntities(linked, (*call).getNote)),
		r(http.MethodPatch, "/api/v4/{entity}/{entity_id}/notes/{id}", onlyEntities(linked, notesOf(true))),

		r(http.MethodGet, "/api/v4/{entity}/tags", onlyEntities(crm, (*call).listTags)),
		r(http.MethodPost, "/api/v4/{entity}/tags", onlyEntities(crm, (*call).createTags)),

		r(http.MethodGet, "/api/v4/webhooks", (*call).listWebhooks),
		r(http.MethodPost, "/api/v4/webhooks", (*call).subscribeWebhook),
		r(http.MethodDelete, "/api/v4/webhooks", (*call).unsubscribeWebhook),
	}
}
