package sandbox_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm/sandbox"
)

func TestAccountAndHostRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, tk := e.account(sandbox.AccountOptions{Subdomain: "alpha"})
	_, other := e.account(sandbox.AccountOptions{Subdomain: "beta"})

	resp := e.do(http.MethodGet, "/api/v4/account?with=amojo_id,datetime_settings,users_groups", tk.Access, nil)
	require.Equal(t, http.StatusOK, resp.status)
	require.Equal(t, "application/hal+json", resp.header.Get("Content-Type"))
	m := resp.json(t)
	require.EqualValues(t, info.AccountID, m["id"])
	require.Equal(t, "alpha", m["subdomain"])
	require.EqualValues(t, info.AdminUserID, m["current_user_id"])
	require.NotEmpty(t, m["amojo_id"])
	require.NotNil(t, m["datetime_settings"])
	require.NotNil(t, dig(m, "_embedded", "users_groups"))
	require.Nil(t, m["users"])

	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v4/account", nil)
	require.NoError(t, err)
	req.Host = "alpha.amocrm.ru"
	req.Header.Set("Authorization", "Bearer "+other.Access)
	hostResp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	hostResp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, hostResp.StatusCode, "a token of beta must not open alpha")

	require.Equal(t, http.StatusUnauthorized, e.do(http.MethodGet, "/api/v4/account", "", nil).status)
	require.Equal(t, http.StatusUnauthorized, e.do(http.MethodGet, "/api/v4/account", "garbage", nil).status)
}

func TestUsersPagingAndRights(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, tk := e.account(sandbox.AccountOptions{Users: 3})
	free, err := e.sb.AddUser(info.AccountID, sandbox.UserOptions{Name: "Free", IsActive: true, IsFree: true})
	require.NoError(t, err)
	_, err = e.sb.AddUser(info.AccountID, sandbox.UserOptions{Name: "Gone", IsActive: false})
	require.NoError(t, err)

	page1 := e.do(http.MethodGet, "/api/v4/users?limit=2", tk.Access, nil)
	require.Equal(t, http.StatusOK, page1.status)
	m := page1.json(t)
	require.EqualValues(t, 5, m["_total_items"])
	require.EqualValues(t, 1, m["_page"])
	require.EqualValues(t, 3, m["_page_count"])
	require.NotNil(t, dig(m, "_links", "next"))
	require.Len(t, dig(m, "_embedded", "users"), 2)
	require.Equal(t, true, dig(m, "_embedded", "users", 0, "rights", "is_admin"))
	require.Equal(t, "A", dig(m, "_embedded", "users", 0, "rights", "leads", "view"))

	page3 := e.do(http.MethodGet, "/api/v4/users?limit=2&page=3", tk.Access, nil).json(t)
	require.Nil(t, dig(page3, "_links", "next"))
	require.Equal(t, false, dig(page3, "_embedded", "users", 0, "rights", "is_active"))
	require.Equal(t, http.StatusNoContent, e.do(http.MethodGet, "/api/v4/users?limit=2&page=4", tk.Access, nil).status)
	require.Equal(t, http.StatusUnprocessableEntity, e.do(http.MethodGet, "/api/v4/users?limit=251", tk.Access, nil).status)

	nonAdmin := e.userToken(info.AccountID, free.ID)
	forbidden := e.do(http.MethodGet, "/api/v4/users", nonAdmin, nil)
	require.Equal(t, http.StatusForbidden, forbidden.status)
	require.Equal(t, "application/problem+json", forbidden.header.Get("Content-Type"))
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/api/v4/account", nonAdmin, nil).status)
}

func TestPipelines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, tk := e.account(sandbox.AccountOptions{})

	list := e.do(http.MethodGet, "/api/v4/leads/pipelines", tk.Access, nil).json(t)
	require.EqualValues(t, 1, list["_total_items"])
	statuses := dig(list, "_embedded", "pipelines", 0, "_embedded", "statuses").([]any)
	first := statuses[0].(map[string]any)
	require.EqualValues(t, 1, first["type"])
	require.EqualValues(t, 10, first["sort"])
	require.Equal(t, false, first["is_editable"])
	ids := map[int64]bool{}
	for _, s := range statuses {
		ids[num(s.(map[string]any)["id"])] = true
	}
	require.True(t, ids[142] && ids[143])

	created := e.do(http.MethodPost, "/api/v4/leads/pipelines", tk.Access, []map[string]any{{
		"name": "Second", "sort": 2, "is_main": false, "is_unsorted_on": true,
		"_embedded": map[string]any{"statuses": []map[string]any{{"name": "New", "sort": 20, "color": "#fffeb2"}}},
	}})
	require.Equal(t, http.StatusOK, created.status, string(created.body))
	p := dig(created.json(t), "_embedded", "pipelines", 0).(map[string]any)
	require.Equal(t, "0", p["request_id"])
	pid := num(p["id"])
	require.Len(t, dig(p, "_embedded", "statuses"), 4, "unsorted, New, won, lost")

	badColour := e.do(http.MethodPost, fmt.Sprintf("/api/v4/leads/pipelines/%d/statuses", pid), tk.Access, []map[string]any{{"name": "X", "sort": 30, "color": "#123456"}})
	require.Equal(t, http.StatusBadRequest, badColour.status)
	require.Equal(t, "color", dig(badColour.json(t), "validation-errors", 0, "errors", 0, "path"))

	st := e.do(http.MethodPost, fmt.Sprintf("/api/v4/leads/pipelines/%d/statuses", pid), tk.Access, []map[string]any{{"name": "Y", "sort": 30, "color": "#C1E0FF"}})
	require.Equal(t, http.StatusOK, st.status, string(st.body))
	yID := num(dig(st.json(t), "_embedded", "statuses", 0, "id"))

	lead := e.do(http.MethodPost, "/api/v4/leads", tk.Access, []map[string]any{{"name": "in Y", "pipeline_id": pid, "status_id": yID}})
	require.Equal(t, http.StatusOK, lead.status, string(lead.body))
	leadID := num(dig(lead.json(t), "_embedded", "leads", 0, "id"))

	require.Equal(t, http.StatusBadRequest, e.do(http.MethodDelete, fmt.Sprintf("/api/v4/leads/pipelines/%d", pid), tk.Access, nil).status, "pipeline holds a lead")
	require.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, fmt.Sprintf("/api/v4/leads/pipelines/%d/statuses/%d", pid, yID), tk.Access, nil).status)
	moved := e.do(http.MethodGet, fmt.Sprintf("/api/v4/leads/%d", leadID), tk.Access, nil).json(t)
	newID := num(dig(p, "_embedded", "statuses", 1, "id"))
	require.Equal(t, newID, num(moved["status_id"]), "leads of a deleted status move to the first stage")
	require.Equal(t, http.StatusBadRequest, e.do(http.MethodDelete, fmt.Sprintf("/api/v4/leads/pipelines/%d/statuses/142", pid), tk.Access, nil).status)

	renamed := e.do(http.MethodPatch, fmt.Sprintf("/api/v4/leads/pipelines/%d/statuses/142", pid), tk.Access, map[string]any{"name": "Записан"})
	require.Equal(t, http.StatusOK, renamed.status, string(renamed.body))

	// Fill up to the caps: 50 pipelines, 100 statuses.
	var many []map[string]any
	for i := range 48 {
		many = append(many, map[string]any{"name": "P" + strconv.Itoa(i), "sort": i, "is_main": false, "is_unsorted_on": false})
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/api/v4/leads/pipelines", tk.Access, many).status)
	over := e.do(http.MethodPost, "/api/v4/leads/pipelines", tk.Access, []map[string]any{{"name": "51st", "sort": 1, "is_main": false, "is_unsorted_on": false}})
	require.Equal(t, http.StatusBadRequest, over.status)
	require.Equal(t, "LimitExceeded", dig(over.json(t), "validation-errors", 0, "errors", 0, "code"))

	var statusBatch []map[string]any
	for i := range 96 {
		statusBatch = append(statusBatch, map[string]any{"name": "S" + strconv.Itoa(i), "sort": 100 + i})
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, fmt.Sprintf("/api/v4/leads/pipelines/%d/statuses", pid), tk.Access, statusBatch).status)
	full := e.do(http.MethodPost, fmt.Sprintf("/api/v4/leads/pipelines/%d/statuses", pid), tk.Access, []map[string]any{{"name": "101st", "sort": 9000}})
	require.Equal(t, http.StatusBadRequest, full.status)
}

func TestCustomFieldValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, tk := e.account(sandbox.AccountOptions{})

	created := e.do(http.MethodPost, "/api/v4/contacts/custom_fields", tk.Access, []map[string]any{
		{"name": "ID пациента", "type": "text", "code": "PATIENT_ID"},
		{"name": "Филиал", "type": "select", "enums": []map[string]any{{"value": "Центр", "sort": 1, "code": "CENTER"}, {"value": "Север", "sort": 2}}},
		{"name": "VIP", "type": "checkbox"},
	})
	require.Equal(t, http.StatusCreated, created.status, string(created.body))
	fields := dig(created.json(t), "_embedded", "custom_fields").([]any)
	textID := num(dig(fields[0], "id"))
	selectID := num(dig(fields[1], "id"))
	centerEnum := num(dig(fields[1], "enums", 0, "id"))
	checkboxID := num(dig(fields[2], "id"))

	require.Equal(t, http.StatusBadRequest, e.do(http.MethodPost, "/api/v4/contacts/custom_fields", tk.Access, []map[string]any{{"name": "Bad", "type": "multitext"}}).status)

	tests := []struct {
		name     string
		values   []map[string]any
		wantCode string
		wantPath string
	}{
		{name: "UnknownField", values: []map[string]any{{"field_id": 999999, "values": []map[string]any{{"value": "x"}}}}, wantCode: "NotSupportedChoice", wantPath: "custom_fields_values.0.field_id"},
		{name: "UnknownCode", values: []map[string]any{{"field_code": "NOPE", "values": []map[string]any{{"value": "x"}}}}, wantCode: "NotSupportedChoice", wantPath: "custom_fields_values.0.field_id"},
		{name: "UnknownEnum", values: []map[string]any{{"field_id": textID, "values": []map[string]any{{"value": "1"}}}, {"field_id": selectID, "values": []map[string]any{{"enum_id": 1}}}}, wantCode: "NotSupportedChoice", wantPath: "custom_fields_values.1.field_id"},
		{name: "WrongCheckboxType", values: []map[string]any{{"field_id": checkboxID, "values": []map[string]any{{"value": "yes"}}}}, wantCode: "InvalidType", wantPath: "custom_fields_values.0.field_id"},
		{name: "PhoneEnumCode", values: []map[string]any{{"field_code": "PHONE", "values": []map[string]any{{"value": "+79990001122", "enum_code": "MOB"}}}}},
		{name: "EnumByCode", values: []map[string]any{{"field_id": selectID, "values": []map[string]any{{"enum_code": "CENTER"}}}}},
		{name: "EnumByValue", values: []map[string]any{{"field_id": selectID, "values": []map[string]any{{"value": "Север"}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := e.do(http.MethodPost, "/api/v4/contacts", tk.Access, []map[string]any{{"name": "X", "custom_fields_values": tc.values, "request_id": "r1"}})
			if tc.wantCode == "" {
				require.Equal(t, http.StatusOK, resp.status, string(resp.body))
				return
			}
			require.Equal(t, http.StatusBadRequest, resp.status, string(resp.body))
			m := resp.json(t)
			require.Equal(t, "Request validation failed", m["detail"])
			require.Equal(t, "https://httpstatus.es/400", m["type"])
			require.Equal(t, "r1", dig(m, "validation-errors", 0, "request_id"))
			require.Equal(t, tc.wantCode, dig(m, "validation-errors", 0, "errors", 0, "code"))
			require.Equal(t, tc.wantPath, dig(m, "validation-errors", 0, "errors", 0, "path"))
		})
	}

	t.Run("ResponseShape", func(t *testing.T) {
		t.Parallel()
		resp := e.do(http.MethodPost, "/api/v4/contacts", tk.Access, []map[string]any{{"name": "Shape", "custom_fields_values": []map[string]any{
			{"field_id": selectID, "values": []map[string]any{{"enum_id": centerEnum}}},
			{"field_code": "EMAIL", "values": []map[string]any{{"value": "a@b.ru", "enum_code": "WORK"}}},
		}}})
		require.Equal(t, http.StatusOK, resp.status, string(resp.body))
		id := num(dig(resp.json(t), "_embedded", "contacts", 0, "id"))
		got := e.do(http.MethodGet, fmt.Sprintf("/api/v4/contacts/%d", id), tk.Access, nil).json(t)
		want := []any{
			map[string]any{"field_id": float64(selectID), "field_name": "Филиал", "field_code": nil, "field_type": "select",
				"values": []any{map[string]any{"value": "Центр", "enum_id": float64(centerEnum), "enum_code": "CENTER"}}},
		}
		cfv := got["custom_fields_values"].([]any)
		require.Empty(t, cmp.Diff(want, cfv[:1]))
		require.Equal(t, "EMAIL", dig(cfv[1], "field_code"))
		require.Equal(t, "multitext", dig(cfv[1], "field_type"))
		require.Equal(t, "WORK", dig(cfv[1], "values", 0, "enum_code"))
	})
}

func TestContactsAndLeads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, tk := e.account(sandbox.AccountOptions{})
	main := dig(e.do(http.MethodGet, "/api/v4/leads/pipelines", tk.Access, nil).json(t), "_embedded", "pipelines", 0).(map[string]any)
	firstStage := num(dig(main, "_embedded", "statuses", 1, "id"))

	t.Run("EmptyBody", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{"", "[]", "  "} {
			resp := e.do(http.MethodPost, "/api/v4/contacts", tk.Access, body)
			require.Equal(t, http.StatusBadRequest, resp.status)
			require.Equal(t, "Request data can not be empty", resp.json(t)["detail"])
		}
	})
	t.Run("TooMany", func(t *testing.T) {
		t.Parallel()
		items := make([]map[string]any, 251)
		for i := range items {
			items[i] = map[string]any{"name": "x"}
		}
		resp := e.do(http.MethodPost, "/api/v4/leads", tk.Access, items)
		require.Equal(t, http.StatusUnprocessableEntity, resp.status)
		require.Equal(t, "Limit 250 per page", resp.json(t)["detail"])
	})
	t.Run("MissingIsNoContent", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/api/v4/leads/1", "/api/v4/contacts/1", "/api/v4/leads?filter[id][]=1"} {
			resp := e.do(http.MethodGet, path, tk.Access, nil)
			require.Equal(t, http.StatusNoContent, resp.status, path)
			require.Empty(t, resp.body)
		}
	})

	contacts := e.do(http.MethodPost, "/api/v4/contacts", tk.Access, []map[string]any{
		{"first_name": "Иван", "last_name": "Петров", "custom_fields_values": []map[string]any{{"field_code": "PHONE", "values": []map[string]any{{"value": "+7 999 000-11-22"}}}}, "tags_to_add": []map[string]any{{"name": "vip"}}},
		{"name": "Мария", "request_id": "maria"},
	})
	require.Equal(t, http.StatusOK, contacts.status, string(contacts.body))
	cs := dig(contacts.json(t), "_embedded", "contacts").([]any)
	require.Equal(t, "0", dig(cs[0], "request_id"))
	require.Equal(t, "maria", dig(cs[1], "request_id"))
	ivan, maria := num(dig(cs[0], "id")), num(dig(cs[1], "id"))

	found := e.do(http.MethodGet, "/api/v4/contacts?query=9990001122", tk.Access, nil).json(t)
	require.Len(t, dig(found, "_embedded", "contacts"), 1)
	require.Equal(t, "Иван Петров", dig(found, "_embedded", "contacts", 0, "name"))
	require.Equal(t, "vip", dig(found, "_embedded", "contacts", 0, "_embedded", "tags", 0, "name"))

	leads := e.do(http.MethodPost, "/api/v4/leads", tk.Access, []map[string]any{
		{"name": "Лечение", "price": 15000, "_embedded": map[string]any{"contacts": []map[string]any{{"id": ivan}}, "tags": []map[string]any{{"name": "implant"}}}},
		{"price": 10, "status_id": 142},
	})
	require.Equal(t, http.StatusOK, leads.status, string(leads.body))
	ls := dig(leads.json(t), "_embedded", "leads").([]any)
	leadID, wonID := num(dig(ls[0], "id")), num(dig(ls[1], "id"))

	lead := e.do(http.MethodGet, fmt.Sprintf("/api/v4/leads/%d?with=contacts", leadID), tk.Access, nil).json(t)
	require.Equal(t, firstStage, num(lead["status_id"]), "default status is the first non-unsorted stage")
	require.Equal(t, num(main["id"]), num(lead["pipeline_id"]))
	require.Empty(t, cmp.Diff([]any{map[string]any{"id": float64(ivan), "is_main": true, "_links": dig(lead, "_embedded", "contacts", 0, "_links")}}, dig(lead, "_embedded", "contacts")))
	won := e.do(http.MethodGet, fmt.Sprintf("/api/v4/leads/%d", wonID), tk.Access, nil).json(t)
	require.Equal(t, fmt.Sprintf("Сделка #%d", wonID), won["name"])
	require.NotNil(t, won["closed_at"])

	patched := e.do(http.MethodPatch, "/api/v4/leads", tk.Access, []map[string]any{{"id": leadID, "price": 20000, "tags_to_delete": []map[string]any{{"name": "implant"}}}})
	require.Equal(t, http.StatusOK, patched.status, string(patched.body))
	require.EqualValues(t, leadID, dig(patched.json(t), "_embedded", "leads", 0, "id"))
	one := e.do(http.MethodPatch, fmt.Sprintf("/api/v4/leads/%d", leadID), tk.Access, map[string]any{"name": "Лечение 2", "_embedded": map[string]any{"tags": nil}})
	require.Equal(t, http.StatusOK, one.status, string(one.body))
	require.EqualValues(t, leadID, one.json(t)["id"])
	lead = e.do(http.MethodGet, fmt.Sprintf("/api/v4/leads/%d", leadID), tk.Access, nil).json(t)
	require.EqualValues(t, 20000, lead["price"])
	require.Equal(t, "Лечение 2", lead["name"])
	require.Empty(t, dig(lead, "_embedded", "tags"))

	missing := e.do(http.MethodPatch, "/api/v4/contacts", tk.Access, []map[string]any{{"id": 1, "name": "x"}})
	require.Equal(t, http.StatusBadRequest, missing.status)
	badStatus := e.do(http.MethodPost, "/api/v4/leads", tk.Access, []map[string]any{{"status_id": 1}})
	require.Equal(t, "status_id", dig(badStatus.json(t), "validation-errors", 0, "errors", 0, "path"))
	badType := e.do(http.MethodPost, "/api/v4/leads", tk.Access, []map[string]any{{"price": "lots"}})
	require.Equal(t, http.StatusBadRequest, badType.status)
	require.Equal(t, "InvalidType", dig(badType.json(t), "validation-errors", 0, "errors", 0, "code"))

	// Paging and ordering.
	page := e.do(http.MethodGet, "/api/v4/contacts?limit=1&order[id]=desc", tk.Access, nil).json(t)
	require.EqualValues(t, maria, dig(page, "_embedded", "contacts", 0, "id"))
	require.NotNil(t, dig(page, "_links", "next"))
	last := e.do(http.MethodGet, "/api/v4/contacts?limit=1&page=2&order[id]=desc", tk.Access, nil).json(t)
	require.Nil(t, dig(last, "_links", "next"))
	require.Equal(t, http.StatusNoContent, e.do(http.MethodGet, "/api/v4/contacts?limit=1&page=3", tk.Access, nil).status)
	filtered := e.do(http.MethodGet, fmt.Sprintf("/api/v4/leads?filter[id][]=%d&filter[id][]=%d", leadID, wonID), tk.Access, nil).json(t)
	require.Len(t, dig(filtered, "_embedded", "leads"), 2)
	byStatus := e.do(http.MethodGet, "/api/v4/leads?filter[statuses][0][pipeline_id]="+strconv.FormatInt(num(main["id"]), 10)+"&filter[statuses][0][status_id]=142", tk.Access, nil).json(t)
	require.Len(t, dig(byStatus, "_embedded", "leads"), 1)
	withLeads := e.do(http.MethodGet, fmt.Sprintf("/api/v4/contacts/%d?with=leads", ivan), tk.Access, nil).json(t)
	require.EqualValues(t, leadID, dig(withLeads, "_embedded", "leads", 0, "id"))
}

func TestComplexLinksNotesTags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, tk := e.account(sandbox.AccountOptions{})

	complexResp := e.do(http.MethodPost, "/api/v4/leads/complex", tk.Access, []map[string]any{{
		"name": "Запись", "price": 100, "request_id": "visit-1",
		"_embedded": map[string]any{"contacts": []map[string]any{{"first_name": "Олег", "custom_fields_values": []map[string]any{{"field_code": "PHONE", "values": []map[string]any{{"value": "+79991112233", "enum_code": "WORK"}}}}}}},
	}})
	require.Equal(t, http.StatusOK, complexResp.status, string(complexResp.body))
	require.True(t, strings.HasPrefix(string(complexResp.body), "["), "bare array reply")
	var got []map[string]any
	require.NoError(t, jsonUnmarshal(complexResp.body, &got))
	require.Len(t, got, 1)
	require.Equal(t, []any{"visit-1"}, got[0]["request_id"])
	require.Equal(t, false, got[0]["merged"])
	leadID, contactID := num(got[0]["id"]), num(got[0]["contact_id"])
	require.NotZero(t, contactID)

	tooMany := make([]map[string]any, 51)
	for i := range tooMany {
		tooMany[i] = map[string]any{"name": "x"}
	}
	require.Equal(t, http.StatusBadRequest, e.do(http.MethodPost, "/api/v4/leads/complex", tk.Access, tooMany).status)

	links := e.do(http.MethodGet, fmt.Sprintf("/api/v4/leads/%d/links", leadID), tk.Access, nil).json(t)
	require.Empty(t, cmp.Diff([]any{map[string]any{"to_entity_id": float64(contactID), "to_entity_type": "contacts", "metadata": map[string]any{"main_contact": true}}}, dig(links, "_embedded", "links")))

	second := num(dig(e.do(http.MethodPost, "/api/v4/contacts", tk.Access, []map[string]any{{"name": "Second"}}).json(t), "_embedded", "contacts", 0, "id"))
	linked := e.do(http.MethodPost, fmt.Sprintf("/api/v4/leads/%d/link", leadID), tk.Access, []map[string]any{{"to_entity_id": second, "to_entity_type": "contacts", "metadata": map[string]any{"is_main": false}}})
	require.Equal(t, http.StatusOK, linked.status, string(linked.body))
	require.EqualValues(t, leadID, dig(linked.json(t), "_embedded", "links", 0, "entity_id"))
	require.Equal(t, http.StatusNoContent, e.do(http.MethodPost, fmt.Sprintf("/api/v4/leads/%d/unlink", leadID), tk.Access, []map[string]any{{"to_entity_id": contactID, "to_entity_type": "contacts"}}).status)
	after := e.do(http.MethodGet, fmt.Sprintf("/api/v4/leads/%d/links", leadID), tk.Access, nil).json(t)
	require.EqualValues(t, second, dig(after, "_embedded", "links", 0, "to_entity_id"))
	require.Equal(t, true, dig(after, "_embedded", "links", 0, "metadata", "main_contact"), "the remaining contact becomes main")

	note := e.do(http.MethodPost, fmt.Sprintf("/api/v4/leads/%d/notes", leadID), tk.Access, []map[string]any{{"note_type": "common", "params": map[string]any{"text": "Пациент записан"}}})
	require.Equal(t, http.StatusOK, note.status, string(note.body))
	require.EqualValues(t, leadID, dig(note.json(t), "_embedded", "notes", 0, "entity_id"))
	require.Equal(t, "0", dig(note.json(t), "_embedded", "notes", 0, "request_id"))
	notes := e.do(http.MethodGet, "/api/v4/leads/notes?filter[entity_id][]="+strconv.FormatInt(leadID, 10), tk.Access, nil).json(t)
	require.Equal(t, "Пациент записан", dig(notes, "_embedded", "notes", 0, "params", "text"))
	require.Equal(t, http.StatusBadRequest, e.do(http.MethodPost, "/api/v4/leads/notes", tk.Access, []map[string]any{{"entity_id": 1, "note_type": "common"}}).status)
	require.Equal(t, http.StatusNoContent, e.do(http.MethodGet, "/api/v4/contacts/notes", tk.Access, nil).status)

	require.Equal(t, http.StatusNoContent, e.do(http.MethodGet, "/api/v4/leads/tags", tk.Access, nil).status)
	tags := e.do(http.MethodPost, "/api/v4/leads/tags", tk.Access, []map[string]any{{"name": "first", "color": "#fffeb2"}})
	require.Equal(t, http.StatusOK, tags.status)
	tagID := num(dig(tags.json(t), "_embedded", "tags", 0, "id"))
	again := e.do(http.MethodPost, "/api/v4/leads/tags", tk.Access, []map[string]any{{"name": "first"}})
	require.Equal(t, tagID, num(dig(again.json(t), "_embedded", "tags", 0, "id")), "an existing name returns its id")
	require.Len(t, dig(e.do(http.MethodGet, "/api/v4/leads/tags", tk.Access, nil).json(t), "_embedded", "tags"), 1)

	integrity := e.sb.Stats().Integrity
	require.Len(t, integrity, 1)
	require.Equal(t, info.AccountID, integrity[0].AccountID)
	require.Zero(t, integrity[0].LeadsWithoutContact)
}

func TestIntegrityCounters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, tk := e.account(sandbox.AccountOptions{})
	created := e.do(http.MethodPost, "/api/v4/contacts/custom_fields", tk.Access, []map[string]any{{"name": "ID пациента (IDENT)", "type": "text"}})
	require.Equal(t, http.StatusCreated, created.status)
	fieldID := num(dig(created.json(t), "_embedded", "custom_fields", 0, "id"))
	withID := func(v string) map[string]any {
		return map[string]any{"name": v, "custom_fields_values": []map[string]any{{"field_id": fieldID, "values": []map[string]any{{"value": v}}}}}
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/api/v4/contacts", tk.Access, []map[string]any{withID("P1"), withID("P1"), withID("P2"), withID("P1")}).status)
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/api/v4/leads", tk.Access, []map[string]any{{"name": "orphan"}}).status)

	resp := e.do(http.MethodGet, "/_sandbox/stats", "", nil)
	require.Equal(t, http.StatusOK, resp.status)
	var stats sandbox.Stats
	require.NoError(t, jsonUnmarshal(resp.body, &stats))
	require.Len(t, stats.Integrity, 1)
	got := stats.Integrity[0]
	require.Equal(t, info.AccountID, got.AccountID)
	require.Equal(t, 3, got.ContactsSharingExternalID)
	require.Equal(t, 1, got.LeadsWithoutContact)
	require.Len(t, got.DuplicateExternalIDs, 1)
	require.Equal(t, "P1", got.DuplicateExternalIDs[0].Value)
	require.Equal(t, 1, stats.Count("POST /api/v4/leads", http.StatusOK))
	require.Equal(t, 1, stats.Count("POST /api/v4/{entity}/custom_fields", http.StatusCreated))
}

func TestPaymentRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, tk := e.account(sandbox.AccountOptions{})
	resp := e.do(http.MethodPost, fmt.Sprintf("/_sandbox/accounts/%d/state", info.AccountID), "", map[string]any{"paid": false})
	require.Equal(t, http.StatusOK, resp.status)
	unpaid := e.do(http.MethodGet, "/api/v4/leads", tk.Access, nil)
	require.Equal(t, http.StatusPaymentRequired, unpaid.status)
	require.Equal(t, "application/problem+json", unpaid.header.Get("Content-Type"))
	require.Equal(t, "Payment Required", unpaid.json(t)["title"])
	require.NoError(t, e.sb.SetPaid(info.AccountID, true))
	require.Equal(t, http.StatusNoContent, e.do(http.MethodGet, "/api/v4/leads", tk.Access, nil).status)
}

func TestContextUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, tk := e.account(sandbox.AccountOptions{})
	active, err := e.sb.AddUser(info.AccountID, sandbox.UserOptions{Name: "Manager", IsActive: true})
	require.NoError(t, err)
	free, err := e.sb.AddUser(info.AccountID, sandbox.UserOptions{Name: "Free", IsActive: true, IsFree: true})
	require.NoError(t, err)
	tests := []struct {
		name   string
		userID int64
		status int
	}{
		{name: "Active", userID: active.ID, status: http.StatusOK},
		{name: "Free", userID: free.ID, status: http.StatusForbidden},
		{name: "Unknown", userID: 1, status: http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp := e.doHeader(http.MethodGet, "/api/v4/account", map[string]string{
				"Authorization": "Bearer " + tk.Access, "X-Context-User-ID": strconv.FormatInt(tc.userID, 10),
			})
			require.Equal(t, tc.status, resp.status)
			if tc.status == http.StatusOK {
				require.EqualValues(t, tc.userID, resp.json(t)["current_user_id"])
			}
		})
	}
}
