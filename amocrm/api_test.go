package amocrm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
)

func TestBatchSplitting(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var chunks [][]string // request ids per request
	srv, _ := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		var items []amocrm.Contact
		if err := json.NewDecoder(r.Body).Decode(&items); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var ids []string
		invalid := false
		answers := []map[string]any{}
		for _, c := range items {
			invalid = invalid || c.Name == "invalid"
			ids = append(ids, c.RequestID)
			n, _ := strconv.Atoi(c.RequestID)
			answers = append(answers, map[string]any{"id": 1000 + n, "request_id": c.RequestID})
		}
		slices.Reverse(answers) // amoCRM does not promise the order
		mu.Lock()
		chunks = append(chunks, ids)
		mu.Unlock()
		if invalid {
			body := problem(400, "Bad Request", "Request validation failed")
			body["validation-errors"] = []map[string]any{{"request_id": "77", "errors": []map[string]any{
				{"code": "InvalidType", "path": "custom_fields_values.0.values.0.value", "detail": "bad"}}}}
			writeJSON(w, 400, "application/problem+json", body)
			return
		}
		writeJSON(w, 200, "application/hal+json", map[string]any{"_embedded": map[string]any{"contacts": answers}})
	})
	_, rdb := redisClient(t)
	cfg := testConfig(srv.URL, rdb, newMemTokens(1, freshToken()))
	cfg.BatchSize = 50
	api := newClient(t, cfg).Account(amocrm.AccountRef{ID: 1})
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		contacts := make([]amocrm.Contact, 120)
		for i := range contacts {
			contacts[i].Name = fmt.Sprintf("Пациент %d", i)
		}
		contacts[5].RequestID = "5" // a caller's own id is kept
		saved, err := api.CreateContacts(ctx, contacts)
		require.NoError(t, err)
		require.Len(t, saved, 120)
		for i, s := range saved {
			require.EqualValues(t, 1000+i, s.ID, "answer %d", i)
			require.Equal(t, strconv.Itoa(i), s.RequestID)
		}
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, chunks, 3)
		require.Equal(t, []int{50, 50, 20}, []int{len(chunks[0]), len(chunks[1]), len(chunks[2])})
		require.Equal(t, "50", chunks[1][0], "request ids are indexes into the caller's slice")
		require.Empty(t, contacts[0].RequestID, "the caller's slice is not modified")
		chunks = nil
	})
	t.Run("ErrValidationInSecondChunk", func(t *testing.T) {
		contacts := make([]amocrm.Contact, 120)
		contacts[77].Name = "invalid"
		saved, err := api.CreateContacts(ctx, contacts)
		require.ErrorIs(t, err, amocrm.ErrValidation)
		var ve *amocrm.ValidationError
		require.ErrorAs(t, err, &ve)
		require.Equal(t, "77", ve.Items[0].RequestID)
		require.Len(t, saved, 50, "the first chunk's answers are returned")
		require.Contains(t, err.Error(), "items 50–99 of 120")
	})
}

func TestPaging(t *testing.T) {
	t.Parallel()
	const pages = 3
	srv, rec := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		require.Equal(t, "250", r.URL.Query().Get("limit"))
		if r.URL.Path == "/api/v4/contacts" && page == 3 {
			w.WriteHeader(http.StatusNoContent) // the empty page after a full one
			return
		}
		links := map[string]any{"self": map[string]any{"href": "x"}}
		last := r.URL.Path == "/api/v4/users" && page == pages
		if !last {
			links["next"] = map[string]any{"href": fmt.Sprintf("https://clinic.amocrm.ru%s?page=%d", r.URL.Path, page+1)}
		}
		key := r.URL.Path[len("/api/v4/"):]
		items := []map[string]any{{"id": page*10 + 1}, {"id": page*10 + 2}}
		writeJSON(w, 200, "application/hal+json", map[string]any{"_page": page, "_links": links, "_embedded": map[string]any{key: items}})
	})
	_, rdb := redisClient(t)
	api := newClient(t, testConfig(srv.URL, rdb, newMemTokens(1, freshToken()))).Account(amocrm.AccountRef{ID: 1})
	ctx := context.Background()

	t.Run("UntilNoNextLink", func(t *testing.T) {
		users, err := api.AllUsers(ctx)
		require.NoError(t, err)
		var ids []int64
		for _, u := range users {
			ids = append(ids, u.ID)
		}
		require.Empty(t, cmp.Diff([]int64{11, 12, 21, 22, 31, 32}, ids))
		require.Equal(t, pages, rec.count("GET /api/v4/users"))
	})
	t.Run("UntilNoContent", func(t *testing.T) {
		contacts, err := api.AllContacts(ctx, amocrm.ListParams{Query: "+79990001122"})
		require.NoError(t, err)
		require.Len(t, contacts, 4)
		require.Equal(t, 3, rec.count("GET /api/v4/contacts"))
	})
}

func TestModelsJSON(t *testing.T) {
	t.Parallel()
	t.Run("FieldValuesRoundTrip", func(t *testing.T) {
		in := `{"id":5,"name":"Иванов","custom_fields_values":[` +
			`{"field_id":11,"field_name":"Телефон","field_code":"PHONE","field_type":"multitext","values":[{"value":"+79990001122","enum_id":3,"enum_code":"MOB"}]},` +
			`{"field_id":12,"values":[{"value":1751621727}]},{"field_id":13,"values":[{"value":true}]},{"field_id":14,"values":[{"enum_id":7}]}],` +
			`"_embedded":{"tags":[{"id":1,"name":"Пациент"}],"leads":[{"id":9}]}}`
		var c amocrm.Contact
		require.NoError(t, json.Unmarshal([]byte(in), &c))
		want := amocrm.Contact{ID: 5, Name: "Иванов", CustomFieldsValues: []amocrm.FieldValues{
			{FieldID: 11, FieldName: "Телефон", FieldCode: "PHONE", FieldType: "multitext", Values: []amocrm.FieldValue{{Value: "+79990001122", EnumID: 3, EnumCode: "MOB"}}},
			{FieldID: 12, Values: []amocrm.FieldValue{{Value: json.Number("1751621727")}}},
			{FieldID: 13, Values: []amocrm.FieldValue{{Value: true}}},
			{FieldID: 14, Values: []amocrm.FieldValue{{EnumID: 7}}},
		}, Embedded: &amocrm.ContactEmbedded{Tags: []amocrm.TagRef{{ID: 1, Name: "Пациент"}}, Leads: []amocrm.EntityRef{{ID: 9}}}}
		require.Empty(t, cmp.Diff(want, c))
	})
	t.Run("MultitextValueShape", func(t *testing.T) {
		out, err := json.Marshal(amocrm.MultitextValue("PHONE", "MOB", "+79990001122"))
		require.NoError(t, err)
		require.JSONEq(t, `{"field_code":"PHONE","values":[{"value":"+79990001122","enum_code":"MOB"}]}`, string(out))
	})
}

func TestRefFromReferer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		referer string
		want    amocrm.AccountRef
		ok      bool
	}{
		{"clinic.amocrm.ru", amocrm.AccountRef{ID: 7, Subdomain: "clinic", Domain: "amocrm.ru"}, true},
		{"https://Clinic-2.kommo.com", amocrm.AccountRef{ID: 7, Subdomain: "clinic-2", Domain: "kommo.com"}, true},
		{"evil.example.com", amocrm.AccountRef{}, false},
		{"clinic.amocrm.ru.evil.com", amocrm.AccountRef{}, false},
		{"a/b.amocrm.ru", amocrm.AccountRef{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.referer, func(t *testing.T) {
			t.Parallel()
			got, err := amocrm.RefFromReferer(7, tt.referer)
			if !tt.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
