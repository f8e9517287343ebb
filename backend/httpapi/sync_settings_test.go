package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/httpapi"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/jobs"
)

// newSyncSettingsEnv is newWidgetEnv with the sync's routes registered.
func newSyncSettingsEnv(t *testing.T) *widgetEnv {
	t.Helper()
	var env *widgetEnv
	clock := func() time.Time { return env.clock() }
	env = newAppEnv(t, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), func(cfg *httpapi.WidgetConfig) {
		cfg.Sync = &engine.Control{Store: cfg.App.(*store.DB), Now: clock, Wake: func(accountID int64, key string) (store.OutboxMessage, error) {
			task, err := jobs.NewSyncAccountTask(jobs.SyncAccountPayload{AccountID: accountID}, key)
			return task.Outbox(), err
		}}
	})
	return env
}

// TestSyncSettings covers PUT /api/app/v1/sync/settings: an admin turns
// continuing inbound leads off and on, each change is stored and logged,
// the state shows it; ordinary users and bad bodies are refused.
func TestSyncSettings(t *testing.T) {
	t.Parallel()
	env := newSyncSettingsEnv(t)
	ctx := context.Background()
	acc := env.install(3101, "sync-settings")
	_, admin := env.open(3101, "sync-settings", 7)

	put := func(session string, body string) reply {
		t.Helper()
		return env.raw(http.MethodPut, "/api/app/v1/sync/settings",
			map[string]string{"Authorization": "Bearer " + session, "Content-Type": "application/json"}, strings.NewReader(body))
	}
	stored := func() bool {
		t.Helper()
		s, err := env.db.SyncSettings(ctx, acc.ID)
		require.NoError(t, err)
		return s.ContinueInboundLeads
	}
	inState := func(session string) bool {
		t.Helper()
		r := env.do(http.MethodGet, "/api/app/v1/state", bearer(session), nil)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var st struct {
			Sync map[string]json.RawMessage `json:"sync"`
		}
		require.NoError(t, json.Unmarshal(r.body, &st))
		raw, ok := st.Sync["continue_inbound_leads"]
		require.True(t, ok, "state.sync has continue_inbound_leads: %s", r.body)
		var on bool
		require.NoError(t, json.Unmarshal(raw, &on))
		return on
	}
	settingEvents := func() []string {
		t.Helper()
		evs, _, err := env.db.ListEvents(ctx, eventlog.Filter{AccountID: acc.ID, Types: []eventlog.Type{eventlog.TypeSetup}, Oldest: true, Page: 1, PerPage: 50})
		require.NoError(t, err)
		var out []string
		for _, e := range evs {
			if e.Details["setting"] == "continue_inbound_leads" {
				out = append(out, e.Message)
			}
		}
		return out
	}

	require.True(t, stored(), "on by default")
	require.True(t, inState(admin))

	t.Run("OffThenOn", func(t *testing.T) {
		r := put(admin, `{"continue_inbound_leads": false}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.JSONEq(t, `{"continue_inbound_leads": false}`, string(r.body))
		require.False(t, stored())
		require.False(t, inState(admin))
		require.Equal(t, []string{"Продолжение входящих заявок выключено (пользователь amoCRM #7)."}, settingEvents())

		r = put(admin, `{"continue_inbound_leads": false}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Len(t, settingEvents(), 1, "saving the same value logs nothing")

		r = put(admin, `{"continue_inbound_leads": true}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.JSONEq(t, `{"continue_inbound_leads": true}`, string(r.body))
		require.True(t, stored())
		require.True(t, inState(admin))
		require.Equal(t, []string{
			"Продолжение входящих заявок выключено (пользователь amoCRM #7).",
			"Продолжение входящих заявок включено (пользователь amoCRM #7).",
		}, settingEvents())
		evs, _, err := env.db.ListEvents(ctx, eventlog.Filter{AccountID: acc.ID, Types: []eventlog.Type{eventlog.TypeSetup}, Page: 1, PerPage: 1})
		require.NoError(t, err)
		require.Equal(t, map[string]any{"by": "amo_user:7", "setting": "continue_inbound_leads", "value": true}, evs[0].Details)
	})

	t.Run("ErrNotAdmin", func(t *testing.T) {
		s := env.do(http.MethodPost, "/api/widget/v1/session", map[string]string{"X-Auth-Token": env.amoTokenAs(3101, "sync-settings", 8, false)}, nil)
		require.Equal(t, http.StatusOK, s.status, string(s.body))
		page := env.do(http.MethodGet, s.json(t)["iframe_url"].(string), nil, nil)
		m := sessionMeta.FindSubmatch(page.body)
		require.NotNil(t, m)
		user := string(m[1])

		before := len(settingEvents())
		r := put(user, `{"continue_inbound_leads": false}`)
		require.Equal(t, http.StatusForbidden, r.status, string(r.body))
		require.Equal(t, "forbidden", errCode(t, r))
		require.True(t, stored(), "unchanged")
		require.Len(t, settingEvents(), before)
		require.True(t, inState(user), "users may still look")
	})

	t.Run("ErrBadBody", func(t *testing.T) {
		for _, tc := range []struct {
			name, body, message string
		}{
			{"MissingField", `{}`, "continue_inbound_leads"},
			{"Null", `{"continue_inbound_leads": null}`, "continue_inbound_leads"},
			{"WrongType", `{"continue_inbound_leads": "no"}`, "«continue_inbound_leads»: ожидается true или false"},
			{"UnknownField", `{"continue_inbound_leads": false, "extra": 1}`, "Неизвестное поле \"extra\""},
			{"TrailingData", `{"continue_inbound_leads": false} {}`, "лишние данные"},
			{"NotAnObject", `false`, "ожидается объект"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := put(admin, tc.body)
				require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
				require.Equal(t, "invalid", errCode(t, r))
				require.Contains(t, r.json(t)["error"].(map[string]any)["message"], tc.message)
				require.True(t, stored(), "unchanged")
			})
		}
	})
}
