package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/connector/protocol"
)

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// reevaluate decides again, at most one page of them, the chains whose grace
// timer expired (entity_links.reevaluate_at, set from
// mirror.Rules.NextReevaluation when a planned reception's lead is written):
// no row changed, yet the reception is a no-show now. Their timers are
// cleared in the same commit; a lead written again sets its own. more
// reports a full page.
func (r *dbRun) reevaluate(ctx context.Context) (Result, bool, error) {
	var res Result
	st := r.e.cfg.Store
	due, err := st.DueReevaluations(ctx, r.db.ID, r.e.cfg.Now(), r.e.cfg.PageSize)
	if err != nil || len(due) == 0 {
		return res, false, err
	}
	if r.dict == nil {
		if err := r.loadDictionaries(ctx); err != nil {
			return res, false, err
		}
	}
	commit := store.SyncCommit{AccountID: r.acc.ID, DatabaseID: r.db.ID}
	var patientIDs, unknown []string
	for _, l := range due {
		commit.ClearReevaluation = append(commit.ClearReevaluation, l.SourceID)
		switch {
		case l.PatientID == "":
			unknown = append(unknown, l.SourceID)
		case !slices.Contains(patientIDs, l.PatientID):
			patientIDs = append(patientIDs, l.PatientID)
		}
	}
	if len(unknown) > 0 {
		recs, err := st.SourceRecordsByID(ctx, r.db.ID, string(protocol.KindReception), unknown)
		if err != nil {
			return res, false, err
		}
		for _, rec := range recs {
			var ir protocol.IdentReception
			if json.Unmarshal(rec.Data, &ir) == nil && ir.PatientID != "" && !slices.Contains(patientIDs, ir.PatientID) {
				patientIDs = append(patientIDs, ir.PatientID)
			}
		}
	}
	pr, err := r.sync(ctx, patientIDs, &commit)
	res.add(pr)
	if err != nil {
		return res, false, err
	}
	res.Reevaluated = len(due)
	if err := r.commitPage(ctx, commit); err != nil {
		return res, false, err
	}
	return res, len(due) == r.e.cfg.PageSize, nil
}

// deleteReceptions handles receptions deleted in IDENT. A lead whose
// current reception was deleted is moved to the cancelled stage of its
// pipeline (left alone in an exception stage), with its status field, and
// keeps its link: the lead is amoCRM's history of the visit, and a reception
// IDENT brings back continues it. A deleted reception that was only the
// root of a chain (it was moved on) changes nothing itself: its patient is
// returned to be synced again.
func (r *dbRun) deleteReceptions(ctx context.Context, ids []string, commit *store.SyncCommit) ([]string, Result, error) {
	var res Result
	links, err := r.e.cfg.Store.AppointmentLinksOf(ctx, r.db.ID, ids)
	if err != nil || len(links) == 0 {
		return nil, res, err
	}
	var resync []string
	var cancel []store.EntityLink
	for _, l := range links {
		cur := l.CurrentID
		if cur == "" {
			cur = l.SourceID
		}
		switch {
		case slices.Contains(ids, cur):
			cancel = append(cancel, l)
		case l.PatientID != "" && !slices.Contains(resync, l.PatientID):
			resync = append(resync, l.PatientID)
		}
	}
	dbID := r.db.ID
	status := r.mv.Mapping.Lead[setup.DatumAppointmentStatus]
	for chunk := range slices.Chunk(cancel, BatchSize) {
		var leadIDs []string
		for _, l := range chunk {
			leadIDs = append(leadIDs, itoa(l.CRMID))
		}
		page, err := r.crm.Leads(ctx, amocrm.ListParams{Limit: BatchSize, Extra: map[string][]string{"filter[id][]": leadIDs}})
		if err != nil {
			return nil, res, err
		}
		current := map[int64]amocrm.Lead{}
		for _, l := range page.Items {
			current[l.ID] = l
		}
		type item struct {
			link store.EntityLink
			pm   setup.PipelineMapping
		}
		var items []item
		for _, l := range chunk {
			lead, ok := current[l.CRMID]
			if !ok {
				continue // deleted in amoCRM too
			}
			if r.held(lead) {
				commit.Events = append(commit.Events, eventlog.Event{AccountID: r.acc.ID, DatabaseID: &dbID, Type: EventSync,
					Message: fmt.Sprintf("«%s»: Запись %s удалена в IDENT; сделка №%d в исключительном этапе и не перемещается", r.db.Name, l.CurrentID, l.CRMID),
					Details: map[string]any{"lead_id": l.CRMID, "kind": string(protocol.KindReception), "source_id": l.CurrentID}})
				continue
			}
			pm, ok := r.pipelineOf(lead.PipelineID, l.PipelineID)
			if !ok {
				continue
			}
			items = append(items, item{l, pm})
		}
		build := func(it item) amocrm.Lead {
			lead := amocrm.Lead{ID: it.link.CRMID, PipelineID: it.pm.PipelineID, StatusID: it.pm.Stages[setup.StateCancelled]}
			if v, ok := fieldValue(status, mirror.StateCancelled.Title(), string(mirror.StateCancelled), nil); ok {
				lead.CustomFieldsValues = []amocrm.FieldValues{v}
			}
			return lead
		}
		written, parked, err := writeBatch(ctx, items, build, r.crm.UpdateLeads)
		if err != nil {
			return nil, res, err
		}
		for _, p := range parked {
			r.addPark(commit, string(protocol.KindReception), p.item.link.CurrentID, p.reason, &res)
		}
		for i, it := range items {
			if written[i] == 0 {
				continue
			}
			res.LeadsUpdated++
			l := it.link
			cur := l.CurrentID
			if cur == "" {
				cur = l.SourceID
			}
			l.ContentHash = hashOf("deleted", cur, r.mv.ID, 0)
			l.PipelineID, l.StatusID, l.ReevaluateAt, l.CurrentID = it.pm.PipelineID, it.pm.Stages[setup.StateCancelled], nil, cur
			commit.Links = append(commit.Links, l)
			commit.Events = append(commit.Events, eventlog.Event{AccountID: r.acc.ID, DatabaseID: &dbID, Type: EventSync,
				Message: fmt.Sprintf("«%s»: Запись %s удалена в IDENT; сделка №%d переведена в этап «%s»", r.db.Name, cur, l.CRMID, mirror.StateCancelled.Title()),
				Details: map[string]any{"lead_id": l.CRMID, "kind": string(protocol.KindReception), "source_id": cur}})
		}
	}
	return resync, res, nil
}

// pipelineOf finds our pipeline a lead is in, else the one last written.
func (r *dbRun) pipelineOf(ids ...int64) (setup.PipelineMapping, bool) {
	for _, id := range ids {
		for _, k := range []setup.PipelineKey{setup.PipelinePrimary, setup.PipelineRepeat} {
			if pm := r.mv.Mapping.Pipelines[k]; id != 0 && pm.PipelineID == id {
				return pm, true
			}
		}
	}
	return setup.PipelineMapping{}, false
}
