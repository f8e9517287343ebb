package sandbox

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// System statuses, the same ids in every pipeline.
const (
	statusWon  int64 = 142
	statusLost int64 = 143
)

// Caps documented by amoCRM; the error for exceeding them is undocumented,
// so the sandbox answers a 400 validation error with code LimitExceeded.
const (
	MaxPipelines          = 50
	MaxStatusesInPipeline = 100
	maxWebhooks           = 100
)

// StatusColors is the fixed palette a status colour must come from.
var StatusColors = []string{
	"#fffeb2", "#fffd7f", "#fff000", "#ffeab2", "#ffdc7f", "#ffce5a", "#ffdbdb",
	"#ffc8c8", "#ff8f92", "#d6eaff", "#c1e0ff", "#98cbff", "#ebffb1", "#deff81",
	"#87f2c0", "#f9deff", "#f3beff", "#ccc8f9", "#eb93ff", "#f2f3f4", "#e6e8ea",
}

func validColor(c string) bool { return slices.Contains(StatusColors, strings.ToLower(c)) }

// systemStatuses returns unsorted (type 1, sort 10), won and lost.
func (s *Sandbox) systemStatuses() []*status {
	return []*status{
		{ID: s.st.nextID(), Name: "Неразобранное", Sort: 10, Color: "#c1c1c1", Type: 1},
		{ID: statusWon, Name: "Успешно реализовано", Sort: 10000, Color: "#CCFF66"},
		{ID: statusLost, Name: "Закрыто и не реализовано", Sort: 11000, Color: "#D5D8DB"},
	}
}

func (s *Sandbox) defaultPipeline() *pipeline {
	p := &pipeline{ID: s.st.nextID(), Name: "Воронка", Sort: 1, IsMain: true, IsUnsortedOn: true}
	p.Statuses = s.systemStatuses()
	for i, name := range []string{"Первичный контакт", "Переговоры", "Принимают решение", "Согласование договора"} {
		p.Statuses = append(p.Statuses, &status{ID: s.st.nextID(), Name: name, Sort: 20 + 10*i, Color: StatusColors[10+i], IsEditable: true})
	}
	p.sortStatuses()
	return p
}

func (c *call) renderStatus(p *pipeline, st *status, withDescriptions bool) map[string]any {
	m := map[string]any{
		"id": st.ID, "name": st.Name, "sort": st.Sort, "is_editable": st.IsEditable,
		"pipeline_id": p.ID, "color": st.Color, "type": st.Type, "account_id": c.acc.ID,
		"_links": map[string]any{"self": c.href("/api/v4/leads/pipelines/" + strconv.FormatInt(p.ID, 10) + "/statuses/" + strconv.FormatInt(st.ID, 10))},
	}
	if withDescriptions {
		d := st.Descriptions
		if d == nil {
			d = []description{}
		}
		m["descriptions"] = d
	}
	return m
}

func (c *call) renderPipeline(p *pipeline) map[string]any {
	p.sortStatuses()
	withDesc := withSet(c.r)["descriptions"]
	statuses := make([]map[string]any, 0, len(p.Statuses))
	for _, st := range p.Statuses {
		statuses = append(statuses, c.renderStatus(p, st, withDesc))
	}
	return map[string]any{
		"id": p.ID, "name": p.Name, "sort": p.Sort, "is_main": p.IsMain,
		"is_unsorted_on": p.IsUnsortedOn, "is_archive": p.IsArchive, "account_id": c.acc.ID,
		"_links":    map[string]any{"self": c.href("/api/v4/leads/pipelines/" + strconv.FormatInt(p.ID, 10))},
		"_embedded": map[string]any{"statuses": statuses},
	}
}

func (c *call) listPipelines() {
	out := make([]map[string]any, 0, len(c.acc.Pipelines))
	for _, p := range c.acc.Pipelines {
		out = append(out, c.renderPipeline(p))
	}
	c.ok(map[string]any{"_total_items": len(out), "_links": c.selfLinks(), "_embedded": map[string]any{"pipelines": out}})
}

func (c *call) getPipeline() {
	p := c.acc.pipeline(c.id("id"))
	if p == nil {
		c.noContent()
		return
	}
	c.ok(c.renderPipeline(p))
}

type statusInput struct {
	ID           *int64         `json:"id"`
	Name         *string        `json:"name"`
	Sort         *int           `json:"sort"`
	Color        *string        `json:"color"`
	Descriptions *[]description `json:"descriptions"`
}

type pipelineInput struct {
	Name         *string `json:"name"`
	Sort         *int    `json:"sort"`
	IsMain       *bool   `json:"is_main"`
	IsUnsortedOn *bool   `json:"is_unsorted_on"`
	IsArchive    *bool   `json:"is_archive"`
	Embedded     *struct {
		Statuses []statusInput `json:"statuses"`
	} `json:"_embedded"`
}

func blank(path string) fieldError {
	return fieldError{Code: "NotBlank", Path: path, Detail: "This value should not be blank."}
}

func validateStatus(in statusInput, prefix string, create bool) []fieldError {
	var errs []fieldError
	if create && in.ID == nil && (in.Name == nil || *in.Name == "") {
		errs = append(errs, blank(prefix+"name"))
	}
	if create && in.ID == nil && in.Sort == nil {
		errs = append(errs, blank(prefix+"sort"))
	}
	if in.Color != nil && !validColor(*in.Color) {
		errs = append(errs, fieldError{Code: "NotSupportedChoice", Path: prefix + "color", Detail: detailChoice})
	}
	if in.Descriptions != nil {
		if len(*in.Descriptions) > 3 {
			errs = append(errs, fieldError{Code: "LimitExceeded", Path: prefix + "descriptions", Detail: "This collection should contain 3 elements or less."})
		}
		for i, d := range *in.Descriptions {
			if !slices.Contains([]string{"newbie", "candidate", "master"}, d.Level) {
				errs = append(errs, fieldError{Code: "NotSupportedChoice", Path: prefix + "descriptions." + strconv.Itoa(i) + ".level", Detail: detailChoice})
			}
			if len([]rune(d.Description)) > 1000 {
				errs = append(errs, fieldError{Code: "InvalidLength", Path: prefix + "descriptions." + strconv.Itoa(i) + ".description", Detail: "This value is too long."})
			}
		}
	}
	return errs
}

func (c *call) applyStatus(p *pipeline, st *status, in statusInput) {
	if in.Name != nil {
		st.Name = *in.Name
	}
	if in.Sort != nil && st.IsEditable {
		st.Sort = *in.Sort
	}
	if in.Color != nil && st.IsEditable {
		st.Color = strings.ToLower(*in.Color)
	}
	if in.Descriptions != nil {
		st.Descriptions = *in.Descriptions
	}
	p.sortStatuses()
}

func (c *call) createPipelines() {
	if !c.requireAdmin() {
		return
	}
	items, ok := c.readBatch(maxPerPage, false)
	if !ok {
		return
	}
	inputs := make([]pipelineInput, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var fe []fieldError
		if e := decodeItem(raw, &inputs[i]); e != nil {
			fe = append(fe, *e)
		} else {
			in := inputs[i]
			if in.Name == nil || *in.Name == "" {
				fe = append(fe, blank("name"))
			}
			if in.Sort == nil {
				fe = append(fe, blank("sort"))
			}
			if in.IsMain == nil {
				fe = append(fe, blank("is_main"))
			}
			if in.IsUnsortedOn == nil {
				fe = append(fe, blank("is_unsorted_on"))
			}
			if in.Embedded != nil {
				if len(in.Embedded.Statuses)+1 > MaxStatusesInPipeline {
					fe = append(fe, fieldError{Code: "LimitExceeded", Path: "_embedded.statuses", Detail: "A pipeline can hold at most 100 statuses."})
				}
				for j, st := range in.Embedded.Statuses {
					fe = append(fe, validateStatus(st, "_embedded.statuses."+strconv.Itoa(j)+".", true)...)
				}
			}
		}
		if len(c.acc.Pipelines)+i+1 > MaxPipelines {
			fe = append(fe, fieldError{Code: "LimitExceeded", Path: "", Detail: "An account can hold at most 50 pipelines."})
		}
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: requestID(raw, i), Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return
	}
	out := make([]map[string]any, 0, len(inputs))
	for i, in := range inputs {
		p := &pipeline{ID: c.s.st.nextID(), Name: *in.Name, Sort: *in.Sort, IsMain: *in.IsMain, IsUnsortedOn: *in.IsUnsortedOn}
		p.Statuses = c.s.systemStatuses()
		if in.Embedded != nil {
			for _, sin := range in.Embedded.Statuses {
				if sin.ID != nil && (*sin.ID == statusWon || *sin.ID == statusLost) {
					c.applyStatus(p, p.status(*sin.ID), sin)
					continue
				}
				if sin.Name == nil {
					continue
				}
				st := &status{ID: c.s.st.nextID(), IsEditable: true, Color: StatusColors[0]}
				c.applyStatus(p, st, sin)
				p.Statuses = append(p.Statuses, st)
			}
		}
		p.sortStatuses()
		c.addPipeline(p)
		m := c.renderPipeline(p)
		m["request_id"] = requestID(items[i], i)
		out = append(out, m)
	}
	c.ok(map[string]any{"_total_items": len(out), "_embedded": map[string]any{"pipelines": out}})
}

func (c *call) addPipeline(p *pipeline) {
	if p.IsMain {
		for _, other := range c.acc.Pipelines {
			other.IsMain = false
		}
	}
	c.acc.Pipelines = append(c.acc.Pipelines, p)
}

func (c *call) patchPipeline() {
	if !c.requireAdmin() {
		return
	}
	p := c.acc.pipeline(c.id("id"))
	if p == nil {
		c.fail(http.StatusNotFound, "Pipeline not found")
		return
	}
	items, ok := c.readBatch(1, true)
	if !ok {
		return
	}
	var in pipelineInput
	if fe := decodeItem(items[0], &in); fe != nil {
		c.validation([]itemErrors{{RequestID: "0", Errors: []fieldError{*fe}}})
		return
	}
	if in.Name != nil {
		p.Name = *in.Name
	}
	if in.Sort != nil {
		p.Sort = *in.Sort
	}
	if in.IsUnsortedOn != nil {
		p.IsUnsortedOn = *in.IsUnsortedOn
	}
	if in.IsArchive != nil {
		p.IsArchive = *in.IsArchive
	}
	if in.IsMain != nil && *in.IsMain {
		for _, other := range c.acc.Pipelines {
			other.IsMain = other == p
		}
	}
	c.ok(c.renderPipeline(p))
}

func (c *call) deletePipeline() {
	if !c.requireAdmin() {
		return
	}
	p := c.acc.pipeline(c.id("id"))
	if p == nil {
		c.fail(http.StatusNotFound, "Pipeline not found")
		return
	}
	if len(c.acc.Pipelines) == 1 {
		c.validation([]itemErrors{{RequestID: "0", Errors: []fieldError{{Code: "NotDeletable", Path: "id", Detail: "The last pipeline can not be deleted."}}}})
		return
	}
	for _, l := range c.acc.Leads {
		if l.PipelineID == p.ID {
			c.validation([]itemErrors{{RequestID: "0", Errors: []fieldError{{Code: "NotDeletable", Path: "id", Detail: "A pipeline holding leads can not be deleted."}}}})
			return
		}
	}
	c.acc.Pipelines = slices.DeleteFunc(c.acc.Pipelines, func(q *pipeline) bool { return q == p })
	if p.IsMain {
		c.acc.Pipelines[0].IsMain = true
	}
	c.noContent()
}

func (c *call) listStatuses() {
	p := c.acc.pipeline(c.id("pipeline_id"))
	if p == nil {
		c.noContent()
		return
	}
	p.sortStatuses()
	withDesc := withSet(c.r)["descriptions"]
	out := make([]map[string]any, 0, len(p.Statuses))
	for _, st := range p.Statuses {
		out = append(out, c.renderStatus(p, st, withDesc))
	}
	c.ok(map[string]any{"_total_items": len(out), "_links": c.selfLinks(), "_embedded": map[string]any{"statuses": out}})
}

func (c *call) getStatus() {
	p := c.acc.pipeline(c.id("pipeline_id"))
	if p == nil || p.status(c.id("id")) == nil {
		c.noContent()
		return
	}
	c.ok(c.renderStatus(p, p.status(c.id("id")), withSet(c.r)["descriptions"]))
}

func (c *call) createStatuses() {
	if !c.requireAdmin() {
		return
	}
	p := c.acc.pipeline(c.id("pipeline_id"))
	if p == nil {
		c.fail(http.StatusNotFound, "Pipeline not found")
		return
	}
	items, ok := c.readBatch(maxPerPage, false)
	if !ok {
		return
	}
	inputs := make([]statusInput, len(items))
	var errs []itemErrors
	for i, raw := range items {
		var fe []fieldError
		if e := decodeItem(raw, &inputs[i]); e != nil {
			fe = append(fe, *e)
		} else {
			fe = validateStatus(inputs[i], "", true)
		}
		if len(p.Statuses)+i+1 > MaxStatusesInPipeline {
			fe = append(fe, fieldError{Code: "LimitExceeded", Path: "", Detail: "A pipeline can hold at most 100 statuses."})
		}
		if fe != nil {
			errs = append(errs, itemErrors{RequestID: requestID(raw, i), Errors: fe})
		}
	}
	if errs != nil {
		c.validation(errs)
		return
	}
	out := make([]map[string]any, 0, len(inputs))
	for i, in := range inputs {
		st := &status{ID: c.s.st.nextID(), IsEditable: true, Color: StatusColors[0]}
		c.applyStatus(p, st, in)
		p.Statuses = append(p.Statuses, st)
		m := c.renderStatus(p, st, true)
		m["request_id"] = requestID(items[i], i)
		out = append(out, m)
	}
	p.sortStatuses()
	c.ok(map[string]any{"_total_items": len(out), "_embedded": map[string]any{"statuses": out}})
}

func (c *call) patchStatus() {
	if !c.requireAdmin() {
		return
	}
	p := c.acc.pipeline(c.id("pipeline_id"))
	var st *status
	if p != nil {
		st = p.status(c.id("id"))
	}
	if st == nil {
		c.fail(http.StatusNotFound, "Status not found")
		return
	}
	items, ok := c.readBatch(1, true)
	if !ok {
		return
	}
	var in statusInput
	var fe []fieldError
	if e := decodeItem(items[0], &in); e != nil {
		fe = append(fe, *e)
	} else {
		fe = validateStatus(in, "", false)
		// Won and lost may only be renamed; unsorted not even that.
		if !st.IsEditable && (in.Sort != nil || in.Color != nil || (st.Type == 1 && in.Name != nil)) {
			fe = append(fe, fieldError{Code: "NotEditable", Path: "id", Detail: "This status can not be edited."})
		}
	}
	if fe != nil {
		c.validation([]itemErrors{{RequestID: "0", Errors: fe}})
		return
	}
	c.applyStatus(p, st, in)
	c.ok(c.renderStatus(p, st, true))
}

func (c *call) deleteStatus() {
	if !c.requireAdmin() {
		return
	}
	p := c.acc.pipeline(c.id("pipeline_id"))
	var st *status
	if p != nil {
		st = p.status(c.id("id"))
	}
	if st == nil {
		c.fail(http.StatusNotFound, "Status not found")
		return
	}
	if !st.IsEditable {
		c.validation([]itemErrors{{RequestID: "0", Errors: []fieldError{{Code: "NotDeletable", Path: "id", Detail: "System statuses can not be deleted."}}}})
		return
	}
	p.Statuses = slices.DeleteFunc(p.Statuses, func(s *status) bool { return s == st })
	first := p.firstStage()
	for _, l := range c.acc.Leads {
		if l.PipelineID == p.ID && l.StatusID == st.ID {
			old := *l
			l.StatusID = first.ID
			l.UpdatedAt = c.now()
			c.leadChanged(&old, l)
		}
	}
	c.noContent()
}
