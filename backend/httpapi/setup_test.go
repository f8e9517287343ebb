package httpapi_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/httpapi"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/jobs"
)

// memCRM is an amoCRM account in memory: the default pipeline and the
// predefined contact fields; creates append.
type memCRM struct {
	mu   sync.Mutex
	snap setup.Snapshot
	next int64
}

func newMemCRM() *memCRM {
	return &memCRM{next: 1000, snap: setup.Snapshot{
		Pipelines: []setup.Pipeline{{ID: 1, Name: "Воронка", Stages: []setup.Stage{{ID: 10, Name: "Неразобранное", Unsorted: true},
			{ID: 11, Name: "Первичный контакт"}, {ID: setup.StageWon, Name: "Успешно"}, {ID: setup.StageLost, Name: "Закрыто"}}}},
		ContactFields: []setup.Field{{ID: 2, Name: "Телефон", Code: setup.CodePhone, Type: setup.FieldMultitext},
			{ID: 3, Name: "Email", Code: setup.CodeEmail, Type: setup.FieldMultitext}},
		LeadFields: []setup.Field{{ID: 4, Name: "Дата визита", Type: setup.FieldDate}, {ID: 5, Name: "Доктор", Type: setup.FieldText}},
		Users:      []setup.User{{ID: 77, Name: "Иванов Иван", Active: true}},
	}}
}

func (m *memCRM) id() int64 { m.next++; return m.next }

func (m *memCRM) Snapshot(context.Context) (setup.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.snap
	s.Pipelines = append([]setup.Pipeline(nil), s.Pipelines...)
	s.ContactFields = append([]setup.Field(nil), s.ContactFields...)
	s.LeadFields = append([]setup.Field(nil), s.LeadFields...)
	return s, nil
}

func (m *memCRM) CreatePipeline(_ context.Context, name string, stages []string) (setup.Pipeline, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := setup.Pipeline{ID: m.id(), Name: name, Stages: []setup.Stage{{ID: m.id(), Name: "Неразобранное", Unsorted: true}}}
	for _, s := range stages {
		p.Stages = append(p.Stages, setup.Stage{ID: m.id(), Name: s})
	}
	m.snap.Pipelines = append(m.snap.Pipelines, p)
	return p, nil
}

func (m *memCRM) CreateStage(_ context.Context, pipelineID int64, name string) (setup.Stage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := setup.Stage{ID: m.id(), Name: name}
	for i := range m.snap.Pipelines {
		if m.snap.Pipelines[i].ID == pipelineID {
			m.snap.Pipelines[i].Stages = append(m.snap.Pipelines[i].Stages, st)
		}
	}
	return st, nil
}

func (m *memCRM) CreateField(_ context.Context, e setup.Entity, name string, t setup.FieldType, enums []string) (setup.Field, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := setup.Field{ID: m.id(), Name: name, Type: t}
	for _, v := range enums {
		f.Enums = append(f.Enums, setup.Enum{ID: m.id(), Value: v})
	}
	if e == setup.EntityContact {
		m.snap.ContactFields = append(m.snap.ContactFields, f)
	} else {
		m.snap.LeadFields = append(m.snap.LeadFields, f)
	}
	return f, nil
}

func newSetupEnv(t *testing.T) (*widgetEnv, *setup.Runner) {
	t.Helper()
	crm := newMemCRM()
	runner := &setup.Runner{Transient: func(error) bool { return false },
		CRM: func(context.Context, int64) (setup.CRM, error) { return crm, nil }}
	env := newAppEnv(t, time.Now(), func(cfg *httpapi.WidgetConfig) { cfg.Setup = runner })
	runner.Store = jobs.SetupStore{DB: env.db}
	return env, runner
}

func TestSetupAPI(t *testing.T) {
	t.Parallel()
	e, runner := newSetupEnv(t)
	e.install(31000001, "setup-api")
	_, session := e.open(31000001, "setup-api", 5)

	r := e.do(http.MethodGet, "/api/app/v1/setup", bearer(session), nil)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	ov := r.json(t)
	require.Equal(t, "not_configured", ov["status"])
	require.Nil(t, ov["mapping"])
	require.Nil(t, ov["run"])
	items := ov["proposal"].(map[string]any)["items"].([]any)
	require.Len(t, items, 2+10+6+5)
	first := items[0].(map[string]any)
	for _, k := range []string{"key", "block", "kind", "label", "name", "decision", "existing_id", "type", "type_label", "required", "renamable", "note"} {
		require.Contains(t, first, k)
	}
	require.Equal(t, "pipeline:primary", first["key"])
	require.Equal(t, "create", first["decision"])
	opts := ov["options"].(map[string]any)
	require.Len(t, opts["pipelines"], 1)
	require.Len(t, opts["fields"].(map[string]any)["lead"], 2)
	require.Len(t, opts["users"], 1)

	t.Run("NonAdminForbidden", func(t *testing.T) {
		tok := e.amoTokenAs(31000001, "setup-api", 6, false)
		s := e.do(http.MethodPost, "/api/widget/v1/session", map[string]string{"X-Auth-Token": tok}, nil)
		require.Equal(t, http.StatusOK, s.status)
		page := e.do(http.MethodGet, s.json(t)["iframe_url"].(string), nil, nil)
		m := sessionMeta.FindSubmatch(page.body)
		require.NotNil(t, m)
		r := e.do(http.MethodPost, "/api/app/v1/setup/runs", bearer(string(m[1])), map[string]any{})
		require.Equal(t, http.StatusForbidden, r.status)
	})

	t.Run("BadRename", func(t *testing.T) {
		r := e.do(http.MethodPost, "/api/app/v1/setup/runs", bearer(session), map[string]any{"renames": map[string]string{"field:contact:phone": "Мобильный"}})
		require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
		require.Contains(t, string(r.body), "стандартное поле")
	})

	var runID string
	t.Run("StartAndApply", func(t *testing.T) {
		r := e.do(http.MethodPost, "/api/app/v1/setup/runs", bearer(session),
			map[string]any{"blocks": []string{"pipelines", "contact", "lead"}, "renames": map[string]string{"field:lead:doctor": "Лечащий врач"}})
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		runID = r.json(t)["run_id"].(string)
		again := e.do(http.MethodPost, "/api/app/v1/setup/runs", bearer(session), map[string]any{})
		require.Equal(t, http.StatusConflict, again.status, "one run at a time")
		var n int
		require.NoError(t, e.db.SQL().QueryRow(`SELECT count(*) FROM outbox WHERE task_id = $1`, "setup:apply:"+runID).Scan(&n))
		require.Equal(t, 1, n, "the task is in the outbox with the run")
		require.NoError(t, runner.Run(context.Background(), runID))
		got := e.do(http.MethodGet, "/api/app/v1/setup/runs/"+runID, bearer(session), nil)
		require.Equal(t, http.StatusOK, got.status)
		require.Equal(t, "succeeded", got.json(t)["state"])
		ov := e.do(http.MethodGet, "/api/app/v1/setup", bearer(session), nil).json(t)
		require.Equal(t, "configured", ov["status"])
		require.Empty(t, ov["problems"])
		lead := ov["mapping"].(map[string]any)["lead"].(map[string]any)
		require.Contains(t, lead, "doctor")
		require.Equal(t, 404, e.do(http.MethodGet, "/api/app/v1/setup/runs/"+"00000000-0000-0000-0000-000000000000", bearer(session), nil).status)
	})

	t.Run("MappingEdits", func(t *testing.T) {
		r := e.do(http.MethodPut, "/api/app/v1/setup/mapping", bearer(session), map[string]any{"item": "field:lead:doctor", "value": 5})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		body := r.json(t)
		require.Equal(t, "configured", body["status"])
		require.EqualValues(t, 5, body["mapping"].(map[string]any)["lead"].(map[string]any)["doctor"].(map[string]any)["field_id"])
		require.EqualValues(t, 2, body["mapping"].(map[string]any)["version"])

		r = e.do(http.MethodPut, "/api/app/v1/setup/mapping", bearer(session), map[string]any{"item": "field:lead:doctor", "value": 4})
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Contains(t, string(r.body), "тип «Дата»")
		r = e.do(http.MethodPut, "/api/app/v1/setup/mapping", bearer(session), map[string]any{"item": "field:lead:reception_id", "value": nil})
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Contains(t, string(r.body), "обязательно")
		r = e.do(http.MethodPut, "/api/app/v1/setup/mapping", bearer(session), map[string]any{"item": "field:lead:branch", "value": nil})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.NotContains(t, r.json(t)["mapping"].(map[string]any)["lead"], "branch", "«Не передавать»")
		r = e.do(http.MethodPut, "/api/app/v1/setup/mapping", bearer(session), map[string]any{"item": "responsible", "value": map[string]any{"mode": "fixed", "user_id": 77}})
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		r = e.do(http.MethodPut, "/api/app/v1/setup/mapping", bearer(session), map[string]any{"item": "responsible", "value": map[string]any{"mode": "fixed", "user_id": 99}})
		require.Equal(t, http.StatusBadRequest, r.status)
		r = e.do(http.MethodPut, "/api/app/v1/setup/mapping", bearer(session), map[string]any{"item": "nonsense", "value": 1})
		require.Equal(t, http.StatusBadRequest, r.status)
	})
}
