package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/setup"
)

// The «Настройки» tab: autosetup, flexible mapping and the drift status.
// Every route is under /api/app/v1 and needs a widget session; the writes
// (POST runs, PUT mapping) need an amoCRM admin (403 otherwise). Errors have
// the standard body {"error":{"code","message"}}: 400 invalid (a bad rename,
// an incompatible field, a required item set to «Не передавать»), 403
// forbidden, 404 not_found (a run of another account), 409 conflict (the sync
// is running: «Остановите синхронизацию, чтобы выполнить автонастройку»;
// another run is running; an amoCRM cap would be exceeded), 503 unavailable
// (amoCRM could not be read right now).
//
// GET /api/app/v1/setup → 200
//
//	{
//	  "status": "not_configured" | "running" | "configured" | "failed" | "drift",
//	  "status_label": "Связка настроена",          // the status in words
//	  "detail": "…",                               // why failed/drift; "" otherwise
//	  "blocks": [{"key":"pipelines","label":"Воронки и этапы"}, {"key":"contact",…}, {"key":"lead",…}],
//	  "proposal": {                                // what autosetup would do now (all blocks, no renames)
//	    "items": [{
//	      "key": "pipeline:primary" | "stage:primary:planned" | "field:lead:doctor",
//	      "block": "pipelines" | "contact" | "lead",
//	      "kind": "pipeline" | "stage" | "field",
//	      "label": "Врач",                         // the plan's name of the item
//	      "name": "Врач",                          // the existing item's name (reuse) or the name to create
//	      "decision": "reuse" | "create" | "skip",
//	      "existing_id": 123,                      // 0 unless reuse
//	      "type": "text", "type_label": "Текст",   // fields only ("" for pipelines and stages)
//	      "required": true,                        // marked * in the UI
//	      "renamable": true,                       // false for amoCRM's predefined fields
//	      "note": "…"                              // "" or why the decision may surprise
//	    }]
//	  } | null,
//	  "proposal_error": {"item":"pipeline:repeat","message":"Нельзя создать воронку …"} | null,
//	  "mapping": {                                 // the current mapping version, null before the first
//	    "version": 3, "created_by": "amo_user:42", "created_at": "2026-…Z",
//	    "pipelines": {"primary": {"pipeline_id": 1, "stages": {"planned": 11, "arrived": 12, …}, "exceptions": [142, 143]}, "repeat": {…}},
//	    "contact": {"patient_id": {"field_id": 5, "type": "text"}, "phone": {"field_id": 7, "code": "PHONE", "type": "multitext"}, …},
//	    "lead": {"appointment_status": {"field_id": 9, "type": "select", "enums": {"planned": 91, …}}, …},
//	    "responsible": {"mode": "doctor" | "fixed", "user_id": 0, "overrides": {"<IDENT doctor id>": 77}}
//	  } | null,                                    // a datum absent from contact/lead is «Не передавать»
//	  "problems": [{"item":"field:lead:doctor","kind":"deleted","message":"Поле «Врач» (сделка) удалено в amoCRM"}],
//	  "plan": {                                    // what flexible setup shows, in order
//	    "pipelines": [{"key":"primary","name":"Первичный приём","stages":[{"state":"planned","key":"stage:primary:planned","name":"Записан на приём"}, …]}],
//	    "contact": [{"datum":"patient_id","key":"field:contact:patient_id","name":"ID пациента IDENT","required":true,
//	                 "types":[{"type":"text","label":"Текст"},{"type":"numeric","label":"Число"}]}, …],
//	    "lead": [ … ]
//	  },
//	  "options": {                                 // what amoCRM has, for the pickers
//	    "pipelines": [{"id":1,"name":"Воронка","archived":false,"stages":[{"id":11,"name":"Первичный контакт","system":false}]}],
//	    "fields": {"contact": [{"id":5,"name":"ID пациента IDENT","type":"text","type_label":"Текст","code":""}], "lead": [ … ]},
//	    "users": [{"id":77,"name":"Иванов Иван","active":true}]   // [] when the token cannot read users
//	  },
//	  "run": {"id":"<uuid>","state":"running"|"succeeded"|"failed","done":3,"total":12,
//	          "item":"field:lead:doctor","error":"", "error_item":"", "started_at":"…", "finished_at":null} | null
//	}
//
// "options" and "proposal" come from amoCRM when the page asks; when amoCRM
// cannot be read they are null and "options_error" says why (the rest of the
// answer still comes from our database).
//
// POST /api/app/v1/setup/runs (admin)
//
//	{"blocks": ["pipelines","contact","lead"], "renames": {"field:lead:doctor": "Лечащий врач"}}
//
// → 202 {"run_id": "<uuid>"}; the run is applied in the background; poll
// GET /api/app/v1/setup/runs/:id. Both fields are optional: blocks default to
// all, renames to none. 400 for an unknown block or item or a bad name, 409
// for a running sync, a run already running or a cap.
//
// GET /api/app/v1/setup/runs/:id → 200 the "run" object above (404 for an
// unknown id or a run of another account).
//
// PUT /api/app/v1/setup/mapping (admin), one item per request, saved at once
// as a new mapping version:
//
//	{"item": "pipeline:primary", "value": 123}            // an amoCRM pipeline id
//	{"item": "stage:primary:planned", "value": 456}       // a stage id of the mapped pipeline
//	{"item": "field:lead:doctor", "value": 789}           // a field id of a compatible type
//	{"item": "field:lead:doctor", "value": null}          // «Не передавать» (not for required items)
//	{"item": "exceptions:primary", "value": [142, 143]}   // the exception stages of a pipeline
//	{"item": "responsible", "value": {"mode": "fixed", "user_id": 77}}
//	{"item": "responsible", "value": {"mode": "doctor", "user_id": 0, "overrides": {"15": 77}}}
//
// → 200 {"status": …, "detail": …, "mapping": {…as above…}, "problems": […]};
// 400 with the problem's message when the value does not fit («Поле «X»
// имеет тип «Дата», нужен «Текст» или «Число»»). Choosing another pipeline
// re-matches its stages by name; stages left unmatched show in "problems".

// SetupService is the setup the settings tab drives; *setup.Runner
// satisfies it.
type SetupService interface {
	Overview(ctx context.Context, accountID int64) (setup.Overview, error)
	Start(ctx context.Context, accountID int64, blocks []setup.Block, renames map[setup.ItemKey]string, startedBy string) (setup.Run, setup.Proposal, error)
	AccountRun(ctx context.Context, accountID int64, runID string) (setup.Run, error)
	SaveMappingItem(ctx context.Context, accountID int64, item setup.ItemKey, v setup.ItemValue, by string) (setup.MappingVersion, []setup.Problem, error)
	State(ctx context.Context, accountID int64) (setup.AccountState, error)
}

// registerSetup adds the «Настройки» routes when a SetupService is wired.
func registerSetup(g *echo.Group, a *appRoutes) {
	if a.cfg.Setup == nil {
		return
	}
	g.GET("/setup", a.setupOverview)
	g.POST("/setup/runs", a.setupStart)
	g.GET("/setup/runs/:id", a.setupRun)
	g.PUT("/setup/mapping", a.setupSaveMapping)
}

// by names the session's user in mapping versions and runs.
func by(c echo.Context) string { return "amo_user:" + strconv.FormatInt(sessionOf(c).UserID, 10) }

type setupBlockJSON struct {
	Key   setup.Block `json:"key"`
	Label string      `json:"label"`
}

type proposalItemJSON struct {
	Key        setup.ItemKey   `json:"key"`
	Block      setup.Block     `json:"block"`
	Kind       string          `json:"kind"`
	Label      string          `json:"label"`
	Name       string          `json:"name"`
	Decision   setup.Action    `json:"decision"`
	ExistingID int64           `json:"existing_id"`
	Type       setup.FieldType `json:"type"`
	TypeLabel  string          `json:"type_label"`
	Required   bool            `json:"required"`
	Renamable  bool            `json:"renamable"`
	Note       string          `json:"note"`
}

type proposalJSON struct {
	Items []proposalItemJSON `json:"items"`
}

type itemProblemJSON struct {
	Item    setup.ItemKey `json:"item"`
	Message string        `json:"message"`
}

type problemJSON struct {
	Item    setup.ItemKey     `json:"item"`
	Kind    setup.ProblemKind `json:"kind"`
	Message string            `json:"message"`
}

type mappingJSON struct {
	Version   int       `json:"version"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	setup.Mapping
}

type typeJSON struct {
	Type  setup.FieldType `json:"type"`
	Label string          `json:"label"`
}

type planStageJSON struct {
	State setup.State   `json:"state"`
	Key   setup.ItemKey `json:"key"`
	Name  string        `json:"name"`
}

type planPipelineJSON struct {
	Key    setup.PipelineKey `json:"key"`
	Name   string            `json:"name"`
	Stages []planStageJSON   `json:"stages"`
}

type planFieldJSON struct {
	Datum    setup.Datum   `json:"datum"`
	Key      setup.ItemKey `json:"key"`
	Name     string        `json:"name"`
	Required bool          `json:"required"`
	Types    []typeJSON    `json:"types"`
}

type planJSON struct {
	Pipelines []planPipelineJSON `json:"pipelines"`
	Contact   []planFieldJSON    `json:"contact"`
	Lead      []planFieldJSON    `json:"lead"`
}

type optionStageJSON struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	System bool   `json:"system"`
}

type optionPipelineJSON struct {
	ID       int64             `json:"id"`
	Name     string            `json:"name"`
	Archived bool              `json:"archived"`
	Stages   []optionStageJSON `json:"stages"`
}

type optionFieldJSON struct {
	ID        int64           `json:"id"`
	Name      string          `json:"name"`
	Type      setup.FieldType `json:"type"`
	TypeLabel string          `json:"type_label"`
	Code      string          `json:"code"`
}

type optionUserJSON struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Active bool   `json:"active"`
}

type optionsJSON struct {
	Pipelines []optionPipelineJSON         `json:"pipelines"`
	Fields    map[string][]optionFieldJSON `json:"fields"`
	Users     []optionUserJSON             `json:"users"`
}

type runJSON struct {
	ID         string         `json:"id"`
	State      setup.RunState `json:"state"`
	Done       int            `json:"done"`
	Total      int            `json:"total"`
	Item       setup.ItemKey  `json:"item"`
	Error      string         `json:"error"`
	ErrorItem  setup.ItemKey  `json:"error_item"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt *time.Time     `json:"finished_at"`
}

type setupJSON struct {
	Status        setup.Status     `json:"status"`
	StatusLabel   string           `json:"status_label"`
	Detail        string           `json:"detail"`
	Blocks        []setupBlockJSON `json:"blocks"`
	Proposal      *proposalJSON    `json:"proposal"`
	ProposalError *itemProblemJSON `json:"proposal_error"`
	Mapping       *mappingJSON     `json:"mapping"`
	Problems      []problemJSON    `json:"problems"`
	Plan          planJSON         `json:"plan"`
	Options       *optionsJSON     `json:"options"`
	OptionsError  string           `json:"options_error,omitempty"`
	Run           *runJSON         `json:"run"`
}

func runOf(r setup.Run) *runJSON {
	return &runJSON{ID: r.ID, State: r.State, Done: r.Progress.Done, Total: r.Progress.Total, Item: r.Progress.Item,
		Error: r.Error, ErrorItem: r.ErrorItem, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
}

func mappingOf(mv *setup.MappingVersion) *mappingJSON {
	if mv == nil {
		return nil
	}
	return &mappingJSON{Version: mv.Version, CreatedBy: mv.CreatedBy, CreatedAt: mv.CreatedAt, Mapping: mv.Mapping}
}

func problemsOf(ps []setup.Problem) []problemJSON {
	out := make([]problemJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, problemJSON{Item: p.Item, Kind: p.Kind, Message: p.Message})
	}
	return out
}

func planOf(p setup.Plan) planJSON {
	out := planJSON{Pipelines: []planPipelineJSON{}, Contact: []planFieldJSON{}, Lead: []planFieldJSON{}}
	for _, ps := range p.Pipelines {
		pj := planPipelineJSON{Key: ps.Key, Name: ps.Name, Stages: []planStageJSON{}}
		for _, st := range ps.Stages {
			pj.Stages = append(pj.Stages, planStageJSON{State: st.State, Key: setup.StageItem(ps.Key, st.State), Name: st.Name})
		}
		out.Pipelines = append(out.Pipelines, pj)
	}
	for _, e := range []setup.Entity{setup.EntityContact, setup.EntityLead} {
		for _, fs := range p.Fields(e) {
			fj := planFieldJSON{Datum: fs.Datum, Key: fs.Item(), Name: fs.Name, Required: fs.Required, Types: []typeJSON{}}
			for _, t := range fs.Compatible {
				fj.Types = append(fj.Types, typeJSON{Type: t, Label: t.Label()})
			}
			if e == setup.EntityContact {
				out.Contact = append(out.Contact, fj)
			} else {
				out.Lead = append(out.Lead, fj)
			}
		}
	}
	return out
}

func proposalOf(plan setup.Plan, p setup.Proposal) *proposalJSON {
	out := &proposalJSON{Items: []proposalItemJSON{}}
	for _, pp := range p.Pipelines {
		out.Items = append(out.Items, proposalItemJSON{Key: pp.Item, Block: setup.BlockPipelines, Kind: "pipeline", Label: pp.Key.Label(),
			Name: pp.Name, Decision: pp.Action, ExistingID: pp.ExistingID, Required: true, Renamable: true, Note: pp.Note})
	}
	for _, pp := range p.Pipelines {
		for _, sp := range pp.Stages {
			out.Items = append(out.Items, proposalItemJSON{Key: sp.Item, Block: setup.BlockPipelines, Kind: "stage", Label: sp.State.Label(),
				Name: sp.Name, Decision: sp.Action, ExistingID: sp.ExistingID, Required: true, Renamable: true, Note: sp.Note})
		}
	}
	for _, fields := range [][]setup.FieldProposal{p.Contact, p.Lead} {
		for _, fp := range fields {
			fs, _ := plan.Field(fp.Entity, fp.Datum)
			out.Items = append(out.Items, proposalItemJSON{Key: fp.Item, Block: fp.Entity.Block(), Kind: "field", Label: fs.Name,
				Name: fp.Name, Decision: fp.Action, ExistingID: fp.ExistingID, Type: fp.Type, TypeLabel: typeLabel(fp.Type),
				Required: fs.Required, Renamable: fs.Code == "", Note: fp.Note})
		}
	}
	return out
}

func typeLabel(t setup.FieldType) string {
	if t == "" {
		return ""
	}
	return t.Label()
}

func optionsOf(s setup.Snapshot) *optionsJSON {
	out := &optionsJSON{Pipelines: []optionPipelineJSON{}, Users: []optionUserJSON{},
		Fields: map[string][]optionFieldJSON{"contact": {}, "lead": {}}}
	for _, p := range s.Pipelines {
		pj := optionPipelineJSON{ID: p.ID, Name: p.Name, Archived: p.Archived, Stages: []optionStageJSON{}}
		for _, st := range p.Stages {
			pj.Stages = append(pj.Stages, optionStageJSON{ID: st.ID, Name: st.Name, System: st.System()})
		}
		out.Pipelines = append(out.Pipelines, pj)
	}
	for _, e := range []setup.Entity{setup.EntityContact, setup.EntityLead} {
		for _, f := range s.Fields(e) {
			out.Fields[string(e)] = append(out.Fields[string(e)], optionFieldJSON{ID: f.ID, Name: f.Name, Type: f.Type, TypeLabel: f.Type.Label(), Code: f.Code})
		}
	}
	for _, u := range s.Users {
		out.Users = append(out.Users, optionUserJSON{ID: u.ID, Name: u.Name, Active: u.Active})
	}
	return out
}

func (a *appRoutes) setupOverview(c echo.Context) error {
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	ov, err := a.cfg.Setup.Overview(c.Request().Context(), acc.ID)
	if err != nil {
		return err
	}
	out := setupJSON{Status: ov.State.Status, StatusLabel: ov.State.Status.Label(), Detail: ov.State.Detail,
		Mapping: mappingOf(ov.Mapping), Problems: problemsOf(ov.Problems), Plan: planOf(ov.Plan)}
	for _, b := range setup.AllBlocks() {
		out.Blocks = append(out.Blocks, setupBlockJSON{Key: b, Label: b.Label()})
	}
	if ov.Snapshot != nil {
		out.Options = optionsOf(*ov.Snapshot)
	} else if ov.SnapshotErr != nil {
		a.log.WarnContext(c.Request().Context(), "setup overview: amoCRM unreadable", "account_id", acc.ID, "err", ov.SnapshotErr)
		out.OptionsError = "Не удалось прочитать настройки amoCRM. Обновите страницу через минуту."
	}
	if ov.Proposal != nil {
		out.Proposal = proposalOf(ov.Plan, *ov.Proposal)
	}
	if ov.ProposalErr != nil {
		var ie *setup.ItemError
		if errors.As(ov.ProposalErr, &ie) {
			out.ProposalError = &itemProblemJSON{Item: ie.Item, Message: ie.Message}
		} else {
			out.ProposalError = &itemProblemJSON{Message: apperr.MessageOf(ov.ProposalErr)}
		}
	}
	if ov.Run != nil {
		out.Run = runOf(*ov.Run)
	}
	return c.JSON(http.StatusOK, out)
}

type setupStartRequest struct {
	Blocks  []setup.Block            `json:"blocks"`
	Renames map[setup.ItemKey]string `json:"renames"`
}

func (a *appRoutes) setupStart(c echo.Context) error {
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	if err := requireAdmin(c); err != nil {
		return err
	}
	var req setupStartRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	for _, name := range req.Renames {
		if len(name) > 255 || !plainText(name) {
			return apperr.New(apperr.Invalid, "Название не длиннее 255 символов, без служебных знаков.")
		}
	}
	run, _, err := a.cfg.Setup.Start(c.Request().Context(), acc.ID, req.Blocks, req.Renames, by(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]string{"run_id": run.ID})
}

func (a *appRoutes) setupRun(c echo.Context) error {
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	run, err := a.cfg.Setup.AccountRun(c.Request().Context(), acc.ID, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, runOf(run))
}

type setupMappingRequest struct {
	Item  setup.ItemKey   `json:"item"`
	Value json.RawMessage `json:"value"`
}

// itemValue reads a PUT mapping value by the kind of item.
func itemValue(item setup.ItemKey, raw json.RawMessage) (setup.ItemValue, error) {
	strict := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	}
	bad := apperr.New(apperr.Invalid, "Неверное значение для %s.", item)
	var v setup.ItemValue
	switch key := string(item); {
	case item == setup.ResponsibleItem:
		var p setup.ResponsiblePolicy
		if err := strict(&p); err != nil {
			return v, bad
		}
		v.Responsible = &p
	case strings.HasPrefix(key, "exceptions:"):
		if err := strict(&v.Exceptions); err != nil {
			return v, bad
		}
	default:
		if len(raw) == 0 || string(raw) == "null" {
			return v, nil
		}
		if err := strict(&v.ID); err != nil || v.ID < 0 {
			return v, bad
		}
	}
	return v, nil
}

func (a *appRoutes) setupSaveMapping(c echo.Context) error {
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	if err := requireAdmin(c); err != nil {
		return err
	}
	var req setupMappingRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Item == "" || len(req.Item) > 100 {
		return apperr.New(apperr.Invalid, "Укажите элемент настройки (item).")
	}
	v, err := itemValue(req.Item, req.Value)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	mv, problems, err := a.cfg.Setup.SaveMappingItem(ctx, acc.ID, req.Item, v, by(c))
	if err != nil {
		return err
	}
	st, err := a.cfg.Setup.State(ctx, acc.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"status": st.Status, "detail": st.Detail, "mapping": mappingOf(&mv), "problems": problemsOf(problems)})
}
