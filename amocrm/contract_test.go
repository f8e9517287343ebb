package amocrm_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/amocrm/sandbox"
)

// TestAgainstSandbox runs the client against the amoCRM emulator: the two
// must agree on shapes, paging, batches, errors and revocation.
func TestAgainstSandbox(t *testing.T) {
	t.Parallel()
	sb, err := sandbox.New(sandbox.Config{ClientID: "client-id", ClientSecret: "client-secret-VALUE",
		RedirectURI: "https://svyazka.test/oauth", HTTPClient: &http.Client{Timeout: time.Second}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)

	info, err := sb.CreateAccount(sandbox.AccountOptions{Subdomain: "clinic", Name: "Клиника", Users: 3})
	require.NoError(t, err)
	_, rdb := redisClient(t)
	tokens := newMemTokens(0, amocrm.Token{})
	cfg := testConfig(srv.URL, rdb, tokens)
	cfg.Now = time.Now
	cfg.RateLimit = 0 // the default 7 rps, which the sandbox enforces
	c := newClient(t, cfg)
	ctx := context.Background()
	ref := amocrm.AccountRef{ID: 10, Subdomain: "clinic"}

	tok, err := c.Exchange(ctx, ref, info.Code)
	require.NoError(t, err)
	require.NoError(t, tokens.SaveTokens(ctx, ref.ID, tok))
	_, err = c.Exchange(ctx, ref, info.Code)
	require.ErrorIs(t, err, amocrm.ErrInvalidGrant, "a code is single use")
	api := c.Account(ref)

	acc, err := api.GetAccount(ctx)
	require.NoError(t, err)
	require.Equal(t, info.AccountID, acc.ID)
	require.Equal(t, "clinic", acc.Subdomain)

	users, err := api.AllUsers(ctx)
	require.NoError(t, err)
	require.Len(t, users, 3)
	require.True(t, users[0].Rights.IsActive)

	pipelines, err := api.Pipelines(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, pipelines)
	created, err := api.CreatePipelines(ctx, []amocrm.Pipeline{{Name: "Пациенты", Sort: 20, IsUnsortedOn: false}})
	require.NoError(t, err)
	require.Len(t, created, 1)
	require.NotZero(t, created[0].ID)
	statuses, err := api.CreateStatuses(ctx, created[0].ID, []amocrm.Status{
		{Name: "Записан", Sort: 20, Color: "#fffeb2"}, {Name: "Пришёл", Sort: 30, Color: "#c1e0ff"}})
	require.NoError(t, err)
	require.Len(t, statuses, 2)
	require.Equal(t, "Записан", statuses[0].Name)
	_, err = api.CreateStatuses(ctx, created[0].ID, []amocrm.Status{{Name: "Плохой цвет", Sort: 40, Color: "#123456"}})
	require.ErrorIs(t, err, amocrm.ErrValidation)

	contactFields, err := api.CustomFields(ctx, amocrm.EntityContacts)
	require.NoError(t, err)
	var phoneFound bool
	for _, f := range contactFields {
		phoneFound = phoneFound || f.Code == "PHONE"
	}
	require.True(t, phoneFound, "PHONE is predefined")
	fields, err := api.CreateCustomFields(ctx, amocrm.EntityLeads, []amocrm.CustomField{
		{Name: "Филиал", Type: amocrm.FieldSelect, Enums: []amocrm.Enum{{Value: "Центр", Sort: 1}, {Value: "Север", Sort: 2}}},
		{Name: "ID визита", Type: amocrm.FieldText}})
	require.NoError(t, err)
	require.Len(t, fields, 2)
	require.Len(t, fields[0].Enums, 2)

	contacts := make([]amocrm.Contact, 60)
	for i := range contacts {
		contacts[i] = amocrm.Contact{Name: fmt.Sprintf("Пациент %d", i),
			CustomFieldsValues: []amocrm.FieldValues{amocrm.MultitextValue("PHONE", "MOB", fmt.Sprintf("+7999000%04d", i))}}
	}
	saved, err := api.CreateContacts(ctx, contacts)
	require.NoError(t, err)
	require.Len(t, saved, 60)
	got, err := api.Contact(ctx, saved[7].ID)
	require.NoError(t, err)
	require.Equal(t, "Пациент 7", got.Name)
	_, err = api.Contact(ctx, saved[59].ID+1000)
	require.ErrorIs(t, err, amocrm.ErrNotFound)
	all, err := api.AllContacts(ctx, amocrm.ListParams{Limit: 25})
	require.NoError(t, err)
	require.Len(t, all, 60)
	found, err := api.Contacts(ctx, amocrm.ListParams{Query: "+79990000042"})
	require.NoError(t, err)
	require.Len(t, found.Items, 1)
	require.Equal(t, saved[42].ID, found.Items[0].ID)

	_, err = api.CreateContacts(ctx, []amocrm.Contact{{Name: "ok"}, {Name: "bad",
		CustomFieldsValues: []amocrm.FieldValues{amocrm.TextValue(999999, "x")}}})
	var ve *amocrm.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "1", ve.Items[0].RequestID)

	leads, err := api.CreateLeads(ctx, []amocrm.Lead{{Name: "Визит", Price: 1500, PipelineID: created[0].ID, StatusID: statuses[0].ID,
		CustomFieldsValues: []amocrm.FieldValues{amocrm.EnumValue(fields[0].ID, fields[0].Enums[1].ID), amocrm.TextValue(fields[1].ID, "V-1")},
		Embedded:           &amocrm.LeadEmbedded{Contacts: []amocrm.EntityRef{{ID: saved[0].ID, IsMain: true}}}}})
	require.NoError(t, err)
	_, err = api.UpdateLeads(ctx, []amocrm.Lead{{ID: leads[0].ID, StatusID: amocrm.StatusWon, PipelineID: created[0].ID}})
	require.NoError(t, err)
	lead, err := api.Lead(ctx, leads[0].ID, "contacts")
	require.NoError(t, err)
	require.Equal(t, amocrm.StatusWon, lead.StatusID)

	_, err = api.Link(ctx, amocrm.EntityLeads, leads[0].ID, []amocrm.Link{{ToEntityID: saved[1].ID, ToEntityType: "contacts"}})
	require.NoError(t, err)
	links, err := api.Links(ctx, amocrm.EntityLeads, leads[0].ID)
	require.NoError(t, err)
	require.Len(t, links, 2)

	notes, err := api.AddNotes(ctx, amocrm.EntityLeads, []amocrm.Note{amocrm.CommonNote(leads[0].ID, "Визит завершён")})
	require.NoError(t, err)
	require.NotZero(t, notes[0].ID)

	tags, err := api.CreateTags(ctx, amocrm.EntityContacts, []amocrm.Tag{{Name: "Пациент"}})
	require.NoError(t, err)
	listed, err := api.Tags(ctx, amocrm.EntityContacts)
	require.NoError(t, err)
	require.Equal(t, tags[0].ID, listed[0].ID)

	hook, err := api.SubscribeWebhook(ctx, "https://svyazka.test/hooks/amocrm/secret", []string{"status_lead", "update_contact"})
	require.NoError(t, err)
	require.NotZero(t, hook.ID)

	require.NoError(t, sb.SetPaid(info.AccountID, false))
	_, err = api.GetAccount(ctx)
	require.ErrorIs(t, err, amocrm.ErrPaymentRequired)
	require.NoError(t, sb.SetPaid(info.AccountID, true))

	_, err = sb.Uninstall(ctx, info.AccountID)
	require.NoError(t, err)
	_, err = api.GetAccount(ctx)
	require.ErrorIs(t, err, amocrm.ErrRevoked)
	require.Zero(t, sb.Stats().RateLimited, "the client kept the sandbox's rate limit")
}
