package engine

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
)

// InboundWindow is how recent an open inbound lead must be for the
// patient's next booked appointment to continue it.
const InboundWindow = 30 * 24 * time.Hour

// continueInbound lets the patient's next booked appointment continue an
// open inbound lead (a call, a site form) instead of creating a lead: among
// creates, per patient whose contact existed before this batch (adopted or
// linked), the planned chain starting first takes the newest lead of the
// contact that is open (not won or lost), outside our pipelines, created
// within InboundWindow and linked to no chain. Such a lead gets l.link.CRMID
// and l.continued; it is then updated, not created.
func (r *dbRun) continueInbound(ctx context.Context, creates []*desiredLead) error {
	if !r.acct.settings.ContinueInboundLeads {
		return nil
	}
	first := map[int64]*desiredLead{} // by contact
	for _, l := range creates {
		if !l.contactExisted || l.facts.State != mirror.StatePlanned {
			continue
		}
		if cur, ok := first[l.contactID]; !ok || l.facts.Start.Before(cur.facts.Start) {
			first[l.contactID] = l
		}
	}
	if len(first) == 0 {
		return nil
	}
	contactIDs := make([]string, 0, len(first))
	for id := range first {
		contactIDs = append(contactIDs, itoa(id))
	}
	slices.Sort(contactIDs)
	leadsOf := map[int64][]int64{}
	var leadIDs []string
	for chunk := range slices.Chunk(contactIDs, BatchSize) {
		page, err := r.crm.Contacts(ctx, amocrm.ListParams{Limit: BatchSize, With: []string{"leads"}, Extra: map[string][]string{"filter[id][]": chunk}})
		if err != nil {
			return err
		}
		for _, ct := range page.Items {
			if ct.Embedded == nil {
				continue
			}
			for _, ref := range ct.Embedded.Leads {
				leadsOf[ct.ID] = append(leadsOf[ct.ID], ref.ID)
				leadIDs = append(leadIDs, itoa(ref.ID))
			}
		}
	}
	if len(leadIDs) == 0 {
		return nil
	}
	from := r.e.cfg.Now().Add(-InboundWindow).Unix()
	leads := map[int64]amocrm.Lead{}
	var ids []int64
	for chunk := range slices.Chunk(leadIDs, BatchSize) {
		page, err := r.crm.Leads(ctx, amocrm.ListParams{Limit: BatchSize, Extra: map[string][]string{"filter[id][]": chunk,
			"filter[created_at][from]": {strconv.FormatInt(from, 10)}}})
		if err != nil {
			return err
		}
		for _, l := range page.Items {
			leads[l.ID] = l
			ids = append(ids, l.ID)
		}
	}
	linked, err := r.e.cfg.Store.LinkedCRMIDs(ctx, r.acc.ID, store.CRMLead, ids)
	if err != nil {
		return err
	}
	// Batches that may continue inbound leads are written one at a time
	// (writeLeads): a lead an earlier batch continued is in our pipeline
	// by now, so it is not taken twice.
	taken := map[int64]bool{}
	for _, contactID := range slices.Sorted(func(yield func(int64) bool) {
		for id := range first {
			if !yield(id) {
				return
			}
		}
	}) {
		var best *amocrm.Lead
		for _, id := range leadsOf[contactID] {
			l, ok := leads[id]
			if !ok || linked[id] || taken[id] || !r.inbound(l, from) {
				continue
			}
			if best == nil || l.CreatedAt > best.CreatedAt || (l.CreatedAt == best.CreatedAt && l.ID > best.ID) {
				best = &l
			}
		}
		if best != nil {
			dl := first[contactID]
			dl.link.CRMID, dl.continued = best.ID, best
			taken[best.ID] = true
		}
	}
	return nil
}

// inbound reports whether l is an open lead outside our pipelines created
// at or after from (unix seconds).
func (r *dbRun) inbound(l amocrm.Lead, from int64) bool {
	if l.StatusID == setup.StageWon || l.StatusID == setup.StageLost || l.CreatedAt < from || l.IsDeleted {
		return false
	}
	for _, pm := range r.mv.Mapping.Pipelines {
		if pm.PipelineID == l.PipelineID {
			return false
		}
	}
	return true
}
