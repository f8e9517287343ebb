package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
)

// Exactly-once creates (issue 10, point 11) without a search before every
// create: a create batch is journaled (store.RecordCreateIntents) before it
// is sent, and the commit storing its links clears the journal. What amoCRM
// may hold for an entity that has no link is then known without asking:
//   - its create is journaled: a create was sent whose answer was never
//     committed (a crash, a dropped connection after amoCRM applied it), so
//     amoCRM is searched by our key field;
//   - the start's account scan found an entity carrying its key and linked
//     to nothing (a database added again, a restored backup): it is taken;
//   - otherwise amoCRM has none, and it is created with no search.
//
// A restored database (its links and journal rolled back while amoCRM
// kept what was written since) is noticed by WriteMarks: the worker keeps
// in Redis when it last stored links of each database; a later instant
// there than in the database means a restore, and the account is scanned
// again before its next create.

// WriteMarks keeps, outside the database, when the sync last stored links
// of each database; jobs.RedisWriteMarks satisfies it.
type WriteMarks interface {
	// Get returns the kept instant (ok false: none).
	Get(ctx context.Context, databaseID int64) (at time.Time, ok bool, err error)
	// Raise keeps at unless a later instant is kept already.
	Raise(ctx context.Context, databaseID int64, at time.Time) error
	// Reset keeps at (nil: forgets the database's instant).
	Reset(ctx context.Context, databaseID int64, at *time.Time) error
}

// checkRestored compares the database's last link write with the kept
// one; a later kept instant means the database was restored from a backup:
// the account's scan is forgotten (the next create reads amoCRM again) with
// a warning event, and the kept instant is reset to the database's.
func (r *dbRun) checkRestored(ctx context.Context) error {
	marks := r.e.cfg.WriteMarks
	if marks == nil {
		return nil
	}
	kept, ok, err := marks.Get(ctx, r.db.ID)
	if err != nil || !ok {
		return err
	}
	wrote := r.db.SyncWroteAt
	if wrote != nil && !kept.After(wrote.Truncate(time.Microsecond)) {
		return nil
	}
	if !r.acct.rescanned {
		dbID := r.db.ID
		ev := eventlog.Event{AccountID: r.acc.ID, DatabaseID: &dbID, Type: eventlog.TypeSync, Severity: eventlog.Warning,
			Message: "Связка заметила, что её база данных восстановлена из резервной копии: перед созданием контактов и сделок " +
				"она заново прочитает amoCRM, чтобы не создать дублей",
			Details: map[string]any{"reason": "restored", "kept_at": kept.UTC().Format(time.RFC3339Nano)}}
		if err := r.e.cfg.Store.ForgetScan(ctx, r.acc.ID, ev); err != nil {
			return err
		}
		r.acct.settings.ContactsScannedAt = nil
		r.acct.rescanned = true
		r.e.cfg.Log.Warn("sync: database restored from a backup; the account is scanned again", "account_id", r.acc.ID, "database_id", r.db.ID,
			"kept_at", kept, "database_wrote_at", wrote)
	}
	return marks.Reset(ctx, r.db.ID, wrote)
}

// commitPage is a page's final commit: Config.BeforeCommit (a test's
// crash), then commit at the engine's now.
func (r *dbRun) commitPage(ctx context.Context, c store.SyncCommit) error {
	if hook := r.e.cfg.BeforeCommit; hook != nil {
		if err := hook(ctx); err != nil {
			return err
		}
	}
	c.Now = r.e.cfg.Now()
	return r.commit(ctx, c)
}

// commit stores c and, when it stored links, raises the kept instant. The
// first links written with a mapping version say so in the event log.
func (r *dbRun) commit(ctx context.Context, c store.SyncCommit) error {
	c.MappingVersion = r.mv.Version
	c.MappingEvent = &eventlog.Event{AccountID: r.acc.ID, Type: eventlog.TypeSync,
		Message: fmt.Sprintf("Данные передаются в amoCRM по настройкам версии %d (сохранены %s)", r.mv.Version,
			r.mv.CreatedAt.In(r.acc.Location()).Format("02.01.2006 15:04")),
		Details: map[string]any{"mapping_version": r.mv.Version, "mapping_version_id": r.mv.ID, "created_by": r.mv.CreatedBy}}
	if err := r.e.cfg.Store.CommitSync(ctx, c); err != nil {
		return err
	}
	if marks := r.e.cfg.WriteMarks; marks != nil && len(c.Links) > 0 {
		if err := marks.Raise(ctx, r.db.ID, c.Now.UTC().Truncate(time.Microsecond)); err != nil {
			// The links are stored; a missed mark only weakens restore
			// detection until the next commit.
			r.e.cfg.Log.Warn("sync: keep write mark", "database_id", r.db.ID, "error", err)
		}
	}
	return nil
}

// keyLookup is how existing searches one entity type.
type keyLookup struct {
	crmType  string // store.CRMContact or store.CRMLead
	linkType string // store.LinkPatient or store.LinkAppointment
	fieldID  int64
	list     func(amocrm.ListParams) ([]amocrm.FieldValues, []int64, bool, error)
}

// existing returns, for items with no link whose keys[i] are item i's
// source ids (a patient's id; every reception id of a chain), the amoCRM id
// of an entity created for it earlier (0: none), as the package's journal
// comment explains. The account is scanned first when this start has not
// been.
func (r *dbRun) existing(ctx context.Context, lk keyLookup, keys [][]string) ([]int64, error) {
	out := make([]int64, len(keys))
	var all []string
	for _, ks := range keys {
		all = append(all, ks...)
	}
	if len(all) == 0 {
		return out, nil
	}
	if err := r.scanAccount(ctx); err != nil {
		return nil, err
	}
	st := r.e.cfg.Store
	scanned, err := st.ScannedKeys(ctx, r.acc.ID, lk.crmType, all)
	if err != nil {
		return nil, err
	}
	found := map[string]int64{}
	for _, k := range scanned { // ordered by key, then id: the lowest id wins
		if found[k.Key] == 0 {
			found[k.Key] = k.CRMID
		}
	}
	journaled, err := st.CreateIntents(ctx, r.db.ID, lk.linkType, all)
	if err != nil {
		return nil, err
	}
	var search []string
	for _, ks := range keys {
		if slices.ContainsFunc(ks, func(k string) bool { return journaled[k] }) {
			search = append(search, ks...)
		}
	}
	if len(search) > 0 {
		hits, err := findByKey(ctx, search, lk.fieldID, lk.list)
		if err != nil {
			return nil, err
		}
		// What another record of the account (another database's patient
		// with the same id) is linked to is not ours.
		var ids []int64
		for _, hs := range hits {
			ids = append(ids, hs...)
		}
		linked, err := st.LinkedCRMIDs(ctx, r.acc.ID, lk.crmType, ids)
		if err != nil {
			return nil, err
		}
		for k, hs := range hits {
			for _, id := range hs { // ascending: the lowest unlinked id wins
				if !linked[id] {
					found[k] = id
					break
				}
			}
		}
	}
	for i, ks := range keys {
		for _, k := range ks {
			if id := found[k]; id != 0 && out[i] == 0 {
				out[i] = id
			}
		}
	}
	return out, nil
}

// journal records the creates about to be sent, the source ids of which
// are ids (see the journal comment above).
func (r *dbRun) journal(ctx context.Context, entityType string, ids []string) error {
	return r.e.cfg.Store.RecordCreateIntents(ctx, r.db.ID, entityType, ids, r.e.cfg.Now())
}

// journalIDs are the source ids of items.
func journalIDs[T any](items []T, key func(T) string) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = key(it)
	}
	return ids
}

// eachChunk runs fn for chunks 0…n-1, up to limit at once
// (amoCRM answers a 50-entity write in a few hundred milliseconds, so one
// request at a time would not reach the rate limit; the shared limiter
// keeps the pace). Each call gets its own commit fragment and Result,
// merged into commit and res in chunk order once all are done; the first
// error (in chunk order) is returned, the fragments of the others are
// merged all the same only when none failed. Chunks of one step are
// independent: different patients, different chains.
func (r *dbRun) eachChunk(ctx context.Context, n, limit int, commit *store.SyncCommit, res *Result,
	fn func(ctx context.Context, i int, commit *store.SyncCommit, res *Result) error) error {
	commits := make([]store.SyncCommit, n)
	results := make([]Result, n)
	errs := make([]error, n)
	limit = max(limit, 1)
	if n == 1 || limit == 1 {
		for i := range n {
			if errs[i] = fn(ctx, i, &commits[i], &results[i]); errs[i] != nil {
				break
			}
		}
	} else {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sem := make(chan struct{}, limit)
		var wg sync.WaitGroup
		for i := range n {
			sem <- struct{}{}
			if ctx.Err() != nil {
				<-sem
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if errs[i] = fn(ctx, i, &commits[i], &results[i]); errs[i] != nil {
					cancel()
				}
			}()
		}
		wg.Wait()
	}
	for i := range n {
		res.add(results[i])
		if errs[i] != nil {
			return errs[i]
		}
	}
	for _, c := range commits {
		mergeCommit(commit, c)
	}
	return nil
}

// mergeCommit appends what a chunk's fragment adds to a page's commit.
func mergeCommit(dst *store.SyncCommit, src store.SyncCommit) {
	dst.Links = append(dst.Links, src.Links...)
	dst.Rekeys = append(dst.Rekeys, src.Rekeys...)
	dst.Parked = append(dst.Parked, src.Parked...)
	dst.Unparked = append(dst.Unparked, src.Unparked...)
	dst.Events = append(dst.Events, src.Events...)
	dst.ClearReevaluation = append(dst.ClearReevaluation, src.ClearReevaluation...)
	dst.AdoptedContacts = append(dst.AdoptedContacts, src.AdoptedContacts...)
	dst.ClearIntents = append(dst.ClearIntents, src.ClearIntents...)
}
