package sandbox_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm/sandbox"
)

type receiver struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	forms  []url.Values
}

func newReceiver(t *testing.T, status int) *receiver {
	rc := &receiver{}
	rc.status.Store(int32(status))
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.forms = append(rc.forms, r.PostForm)
		rc.mu.Unlock()
		w.WriteHeader(int(rc.status.Load()))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() []url.Values {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]url.Values(nil), rc.forms...)
}

func TestWebhookDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, tk := e.account(sandbox.AccountOptions{Subdomain: "hooks"})
	rc := newReceiver(t, http.StatusOK)

	sub := e.do(http.MethodPost, "/api/v4/webhooks", tk.Access, map[string]any{"destination": rc.srv.URL + "/amo", "settings": []string{"add_lead", "status_lead", "add_contact", "delete_lead"}})
	require.Equal(t, http.StatusCreated, sub.status, string(sub.body))
	require.Equal(t, false, sub.json(t)["disabled"])
	upsert := e.do(http.MethodPost, "/api/v4/webhooks", tk.Access, map[string]any{"destination": rc.srv.URL + "/amo", "settings": []string{"add_lead", "status_lead", "add_contact", "delete_lead", "update_lead"}})
	require.Equal(t, http.StatusCreated, upsert.status)
	list := e.do(http.MethodGet, "/api/v4/webhooks", tk.Access, nil).json(t)
	require.EqualValues(t, 1, list["_total_items"], "upsert by destination")

	created := e.do(http.MethodPost, "/api/v4/leads", tk.Access, []map[string]any{{"name": "Hook", "price": 5}})
	leadID := num(dig(created.json(t), "_embedded", "leads", 0, "id"))
	e.sb.DeliverWebhooks(context.Background())
	forms := rc.received()
	require.Len(t, forms, 1)
	require.Equal(t, fmt.Sprint(leadID), forms[0].Get("leads[add][0][id]"))
	require.Equal(t, "5", forms[0].Get("leads[add][0][price]"))
	require.Equal(t, "hooks", forms[0].Get("account[subdomain]"))
	require.Equal(t, fmt.Sprint(info.AccountID), forms[0].Get("account[id]"))

	oldStatus := num(dig(e.do(http.MethodGet, fmt.Sprintf("/api/v4/leads/%d", leadID), tk.Access, nil).json(t), "status_id"))
	require.Equal(t, http.StatusOK, e.do(http.MethodPatch, fmt.Sprintf("/api/v4/leads/%d", leadID), tk.Access, map[string]any{"status_id": 142}).status)
	e.sb.DeliverWebhooks(context.Background())
	forms = rc.received()
	require.Len(t, forms, 2)
	require.Equal(t, "142", forms[1].Get("leads[status][0][status_id]"))
	require.Equal(t, fmt.Sprint(oldStatus), forms[1].Get("leads[status][0][old_status_id]"))
	require.NotEmpty(t, forms[1].Get("leads[status][0][pipeline_id]"))
	require.Equal(t, fmt.Sprint(leadID), forms[1].Get("leads[update][0][id]"))

	require.NoError(t, e.sb.DeleteLead(info.AccountID, leadID))
	e.sb.DeliverWebhooks(context.Background())
	forms = rc.received()
	require.Len(t, forms, 3)
	require.Equal(t, fmt.Sprint(leadID), forms[2].Get("leads[delete][0][id]"))

	require.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, "/api/v4/webhooks", tk.Access, map[string]any{"destination": rc.srv.URL + "/amo"}).status)
	require.Equal(t, http.StatusNotFound, e.do(http.MethodDelete, "/api/v4/webhooks", tk.Access, map[string]any{"destination": rc.srv.URL + "/amo"}).status)
	require.Equal(t, http.StatusNoContent, e.do(http.MethodGet, "/api/v4/webhooks", tk.Access, nil).status)
}

func TestWebhookRetrySchedule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		attempts []time.Duration // offsets from the first attempt
	}{
		{name: "ServerError", status: http.StatusInternalServerError, attempts: []time.Duration{0, 5 * time.Minute, 20 * time.Minute, 35 * time.Minute, 95 * time.Minute}},
		{name: "NotFound", status: http.StatusNotFound, attempts: []time.Duration{0, 5 * time.Minute, 20 * time.Minute}},
		{name: "OK", status: http.StatusOK, attempts: []time.Duration{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			_, tk := e.account(sandbox.AccountOptions{})
			rc := newReceiver(t, tc.status)
			require.Equal(t, http.StatusCreated, e.do(http.MethodPost, "/api/v4/webhooks", tk.Access, map[string]any{"destination": rc.srv.URL, "settings": []string{"add_contact"}}).status)
			start := e.clock.Now()
			require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/api/v4/contacts", tk.Access, []map[string]any{{"name": "R"}}).status)
			e.sb.DeliverWebhooks(context.Background())

			// Walk the clock minute by minute for three hours.
			for range 180 {
				resp := e.do(http.MethodPost, "/_sandbox/clock/advance", "", map[string]any{"seconds": 60})
				require.Equal(t, http.StatusOK, resp.status)
			}
			var got []time.Duration
			for _, d := range e.sb.Deliveries() {
				got = append(got, d.At.Sub(start))
			}
			require.Equal(t, tc.attempts, got)
			require.Len(t, rc.received(), len(tc.attempts))
			require.Zero(t, e.sb.PendingDeliveries())
		})
	}
}

func TestWebhookAutoDisableAndCaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	info, tk := e.account(sandbox.AccountOptions{Users: 2})
	rc := newReceiver(t, http.StatusNotFound)
	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, "/api/v4/webhooks", tk.Access, map[string]any{"destination": rc.srv.URL, "settings": []string{"add_lead"}}).status)
	for range 101 {
		require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/api/v4/leads", tk.Access, []map[string]any{{"name": "x"}}).status)
	}
	e.sb.DeliverWebhooks(context.Background())
	list := e.do(http.MethodGet, "/api/v4/webhooks", tk.Access, nil).json(t)
	require.Equal(t, true, dig(list, "_embedded", "webhooks", 0, "disabled"))

	for i := range 99 {
		require.Equal(t, http.StatusCreated, e.do(http.MethodPost, "/api/v4/webhooks", tk.Access, map[string]any{"destination": fmt.Sprintf("https://example.com/%d", i), "settings": []string{"add_lead"}}).status)
	}
	over := e.do(http.MethodPost, "/api/v4/webhooks", tk.Access, map[string]any{"destination": "https://example.com/over", "settings": []string{"add_lead"}})
	require.Equal(t, http.StatusBadRequest, over.status)

	users := dig(e.do(http.MethodGet, "/api/v4/users", tk.Access, nil).json(t), "_embedded", "users").([]any)
	nonAdmin := e.userToken(info.AccountID, num(dig(users[1], "id")))
	require.Equal(t, http.StatusForbidden, e.do(http.MethodGet, "/api/v4/webhooks", nonAdmin, nil).status)
}
