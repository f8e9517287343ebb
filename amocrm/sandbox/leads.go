package sandbox

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// leadKind serves /api/v4/leads on the shared path.
var leadKind = &kind[lead, leadPlan]{
	defaultName: func(id int64) string { return "Сделка #" + strconv.FormatInt(id, 10) },
	entity:      "leads",
	records:     func(a *account) map[int64]*lead { return a.Leads },
	record:      func(l *lead) *record { return &l.record },
	plan:        (*call).planLead,
	apply:       (*call).applyLead,
	form:        func(c *call, l *lead) map[string]string { return c.leadForm(l, nil) },
	changed:     (*call).leadChanged,
	render:      (*call).renderLead,
	matches: func(c *call, l *lead, query string) bool {
		return c.keepLead(l) && matchesQuery(query, []string{l.Name, strconv.FormatInt(l.ID, 10)}, l.Fields)
	},
}

type leadInput struct {
	recordInput
	Price        *int64 `json:"price"`
	StatusID     *int64 `json:"status_id"`
	PipelineID   *int64 `json:"pipeline_id"`
	LossReasonID *int64 `json:"loss_reason_id"`
	ClosedAt     *int64 `json:"closed_at"`
	Embedded     *struct {
		Tags      json.RawMessage   `json:"tags"`
		Contacts  []json.RawMessage `json:"contacts"`
		Companies []json.RawMessage `json:"companies"`
	} `json:"_embedded"`
}

type linkInput struct {
	ID     int64 `json:"id"`
	IsMain bool  `json:"is_main"`
}

type leadPlan struct {
	planBase[lead]
	in         leadInput
	contacts   []linkInput
	hasLinks   bool
	pipelineID int64
	statusID   int64
}

func (c *call) planLead(raw json.RawMessage, index int, patch bool, fixedID int64) (leadPlan, []fieldError) {
	var p leadPlan
	var errs []fieldError
	p.planBase, errs = planItem(c, "leads", c.acc.Leads, raw, index, patch, fixedID, &p.in, &p.in.recordInput, func(target *lead) ([]fieldError, json.RawMessage) {
		p.target = target
		errs := c.resolveStage(&p)
		if p.in.Embedded == nil {
			return errs, nil
		}
		for j, raw := range p.in.Embedded.Contacts {
			var l linkInput
			if json.Unmarshal(raw, &l) != nil || c.acc.Contacts[l.ID] == nil {
				errs = append(errs, fieldError{Code: "NotSupportedChoice", Path: "_embedded.contacts." + strconv.Itoa(j) + ".id", Detail: detailChoice})
				continue
			}
			p.contacts = append(p.contacts, l)
		}
		p.hasLinks = p.in.Embedded.Contacts != nil
		return errs, p.in.Embedded.Tags
	})
	return p, errs
}

// resolveStage picks pipeline and status: a status alone finds its
// pipeline (142/143 stay in the lead's or the main pipeline), a pipeline
// alone its first stage, nothing the main pipeline's first stage.
func (c *call) resolveStage(p *leadPlan) []fieldError {
	choice := func(path string) []fieldError {
		return []fieldError{{Code: "NotSupportedChoice", Path: path, Detail: detailChoice}}
	}
	var pl *pipeline
	switch {
	case p.in.PipelineID != nil:
		pl = c.acc.pipeline(*p.in.PipelineID)
		if pl == nil {
			return choice("pipeline_id")
		}
	case p.target != nil:
		pl = c.acc.pipeline(p.target.PipelineID)
	default:
		pl = c.acc.mainPipeline()
	}
	if p.in.StatusID != nil {
		if st := pl.status(*p.in.StatusID); st != nil {
			p.pipelineID, p.statusID = pl.ID, st.ID
			return nil
		}
		if p.in.PipelineID != nil {
			return choice("status_id")
		}
		for _, other := range c.acc.Pipelines {
			if other.status(*p.in.StatusID) != nil {
				p.pipelineID, p.statusID = other.ID, *p.in.StatusID
				return nil
			}
		}
		return choice("status_id")
	}
	if p.target != nil && p.in.PipelineID == nil {
		p.pipelineID, p.statusID = p.target.PipelineID, p.target.StatusID
		return nil
	}
	if p.target != nil && p.target.PipelineID == pl.ID {
		p.pipelineID, p.statusID = pl.ID, p.target.StatusID
		return nil
	}
	p.pipelineID, p.statusID = pl.ID, pl.firstStage().ID
	return nil
}

// applyLead writes the lead's own fields: a move into won or lost stamps
// closed_at, a move out clears it; linked contacts are added.
func (c *call) applyLead(l *lead, p leadPlan) {
	in := p.in
	assign(&l.Name, in.Name)
	assign(&l.Price, in.Price)
	assign(&l.LossReasonID, in.LossReasonID)
	wasClosed := l.StatusID == statusWon || l.StatusID == statusLost
	l.PipelineID, l.StatusID = p.pipelineID, p.statusID
	isClosed := l.StatusID == statusWon || l.StatusID == statusLost
	switch {
	case in.ClosedAt != nil:
		l.ClosedAt = *in.ClosedAt
	case isClosed && !wasClosed:
		l.ClosedAt = c.now()
	case !isClosed:
		l.ClosedAt = 0
	}
	if p.hasLinks {
		for _, link := range p.contacts {
			c.linkContact(l, link.ID, link.IsMain)
		}
	}
}

// linkContact adds a contact to a lead; the first contact becomes main.
func (c *call) linkContact(l *lead, contactID int64, isMain bool) {
	if len(l.Contacts) == 0 {
		isMain = true
	}
	if isMain {
		for i := range l.Contacts {
			l.Contacts[i].IsMain = false
		}
	}
	for i := range l.Contacts {
		if l.Contacts[i].ID == contactID {
			l.Contacts[i].IsMain = l.Contacts[i].IsMain || isMain
			return
		}
	}
	l.Contacts = append(l.Contacts, leadLink{ID: contactID, IsMain: isMain})
}

// leadChanged emits update, and status/responsible when those moved.
func (c *call) leadChanged(old, l *lead) {
	c.emit("leads", "update", c.leadForm(l, nil))
	if old.StatusID != l.StatusID || old.PipelineID != l.PipelineID {
		c.emit("leads", "status", c.leadForm(l, old))
	}
	if old.ResponsibleUserID != l.ResponsibleUserID {
		c.emit("leads", "responsible", c.leadForm(l, old))
	}
}

func (c *call) renderLead(l *lead, with map[string]bool) map[string]any {
	embedded := map[string]any{"tags": c.renderTags("leads", l.Tags), "companies": []map[string]any{}}
	for _, id := range l.Companies {
		embedded["companies"] = append(embedded["companies"].([]map[string]any), map[string]any{"id": id})
	}
	if with["contacts"] {
		contacts := []map[string]any{}
		for _, link := range l.Contacts {
			contacts = append(contacts, map[string]any{"id": link.ID, "is_main": link.IsMain, "_links": c.entityLinks("contacts", link.ID)})
		}
		embedded["contacts"] = contacts
	}
	if with["loss_reason"] {
		embedded["loss_reason"] = []any{}
	}
	if with["catalog_elements"] {
		embedded["catalog_elements"] = []any{}
	}
	var lossReason, closedAt any
	if l.LossReasonID != 0 {
		lossReason = l.LossReasonID
	}
	if l.ClosedAt != 0 {
		closedAt = l.ClosedAt
	}
	return map[string]any{
		"id": l.ID, "name": l.Name, "price": l.Price, "responsible_user_id": l.ResponsibleUserID,
		"group_id": 0, "status_id": l.StatusID, "pipeline_id": l.PipelineID, "loss_reason_id": lossReason,
		"created_by": l.CreatedBy, "updated_by": l.UpdatedBy, "created_at": l.CreatedAt, "updated_at": l.UpdatedAt,
		"closed_at": closedAt, "closest_task_at": nil, "is_deleted": false,
		"custom_fields_values": c.renderFieldValues("leads", l.Fields),
		"score":                nil, "account_id": c.acc.ID, "labor_cost": nil,
		"_links":    c.entityLinks("leads", l.ID),
		"_embedded": embedded,
	}
}

// keepLead applies the lead-only filters: pipeline, price, closing time and
// filter[statuses][i][pipeline_id|status_id] pairs.
func (c *call) keepLead(l *lead) bool {
	q := c.query()
	if ids := queryInts(q, "filter[pipeline_id]"); len(ids) > 0 && !slices.Contains(ids, l.PipelineID) {
		return false
	}
	if !inRange(q.Get("filter[price][from]"), q.Get("filter[price][to]"), l.Price) {
		return false
	}
	if !inRange(q.Get("filter[closed_at][from]"), q.Get("filter[closed_at][to]"), l.ClosedAt) {
		return false
	}
	type pair struct{ pipeline, status int64 }
	statuses := map[string]*pair{}
	for key, vs := range q {
		rest, ok := strings.CutPrefix(key, "filter[statuses][")
		if !ok || len(vs) == 0 {
			continue
		}
		idx, attr, _ := strings.Cut(rest, "][")
		attr = strings.TrimSuffix(attr, "]")
		if statuses[idx] == nil {
			statuses[idx] = &pair{}
		}
		v, _ := strconv.ParseInt(vs[0], 10, 64)
		if attr == "pipeline_id" {
			statuses[idx].pipeline = v
		} else {
			statuses[idx].status = v
		}
	}
	if len(statuses) > 0 {
		match := false
		for _, p := range statuses {
			if (p.pipeline == 0 || p.pipeline == l.PipelineID) && p.status == l.StatusID {
				match = true
			}
		}
		return match
	}
	return true
}
