package ident

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Read returns the next page of records after cursor (nil or empty: from the
// beginning) and the cursor to pass next time. The caller stores records and
// next together, atomically; a Read with a stored cursor resumes exactly
// where that page ended, sending nothing twice and missing nothing. more is
// true while further pages are ready now; false means caught up (poll later).
// One Read returns at most Options.PageSize records.
//
// A Read runs one cycle step by step; a cycle is one of:
//
//   - initial: fix the change marks first (MIN_ACTIVE_ROWVERSION() and
//     max(Patients.DateTimeChanged)), then every doctor, branch, chair and
//     cancel reason, every patient (keyset by ID) and every reception with
//     PlanStart >= since (keyset by ID). Changes made meanwhile are picked up
//     by the first incremental cycle.
//   - incremental: receptions with last < RowVersion < MIN_ACTIVE_ROWVERSION()
//     (those in the window are sent; the patients of all of them are sent
//     too, since their first-visit facts may have changed), then patients
//     with DateTimeChanged >= mark - Overlap, then, every DictionaryEvery,
//     dictionary rows whose content changed.
//   - re-scan, every RescanEvery: the dictionaries and the window again
//     (re-emitting current rows), Deleted records for receptions that
//     vanished, and every PatientRescanEvery all patients.
//
// Versions: a reception's Version is its RowVersion. Rows without one
// (patients, dictionaries, receptions of a database lacking RowVersion, and
// Deleted records there) get the connector clock in Unix microseconds, made
// strictly increasing through the cursor, so newer content never has a lower
// version; re-reads whose content hash equals the last one sent in the
// overlap are skipped, so polling with an overlap does not resend. A Deleted
// reception gets max(highest rowversion sent, current max) + 1.
//
// Deleted receptions: the cursor keeps the set of reception ids sent in the
// window (a bitmap over the id range, compact because ids grow with time).
// A re-scan collects the ids it sees; each id known but not seen is looked up
// by ID, and only those truly gone from Receptions are reported (one that
// merely left the window is forgotten quietly).
//
// Errors are *Error values (see Check); on error next is nil and the caller
// retries with the cursor it has.
func (r *Reader) Read(ctx context.Context, raw []byte) (records []protocol.Record, next []byte, more bool, err error) {
	c, err := decodeCursor(raw)
	if err != nil {
		return nil, nil, false, err
	}
	if err := r.ensureProbed(ctx); err != nil {
		return nil, nil, false, err
	}
	if err := r.pause(ctx); err != nil {
		return nil, nil, false, err
	}
	now := r.opts.Now()
	if len(c.Queue) == 0 {
		r.plan(c, now)
	}
	for {
		recs, done, err := r.step(ctx, c, now)
		if err != nil {
			return nil, nil, false, err
		}
		if done {
			c.Queue = c.Queue[1:]
			c.After, c.AfterT = 0, ""
		}
		if len(c.Queue) == 0 {
			if c.Mode == modeInitial {
				c.InitialDone = true
			}
			more = c.Mode != modeIncremental
			c.Mode = ""
		} else if len(recs) == 0 {
			continue
		} else {
			more = true
		}
		next, err := json.Marshal(c)
		if err != nil {
			return nil, nil, false, fmt.Errorf("ident: encode cursor: %w", err)
		}
		r.mu.Lock()
		r.lastRead, r.lastMore = r.opts.Now(), more
		r.mu.Unlock()
		return recs, next, more, nil
	}
}

// pause keeps PagePause between the queries of consecutive pages.
func (r *Reader) pause(ctx context.Context) error {
	r.mu.Lock()
	wait := time.Duration(0)
	if r.lastMore && r.opts.PagePause > 0 {
		wait = r.opts.PagePause - r.opts.Now().Sub(r.lastRead)
	}
	r.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Cycle modes and steps.
const (
	modeInitial     = "initial"
	modeRescan      = "rescan"
	modeIncremental = "incremental"

	stepStart         = "start"
	stepDoctors       = "doctors"
	stepBranches      = "branches"
	stepChairs        = "chairs"
	stepReasons       = "cancel_reasons"
	stepPatients      = "patients"
	stepReceptions    = "receptions"
	stepDeleted       = "deleted"
	stepIncReceptions = "changed_receptions"
	stepIncPatients   = "changed_patients"
)

const cursorVersion = 1

// cursor is Read's opaque state, JSON-encoded.
type cursor struct {
	V     int      `json:"v"`
	Mode  string   `json:"mode,omitempty"`
	Queue []string `json:"queue,omitempty"`
	// After (an id) and AfterT (a naive time) are the keyset position inside
	// the current step.
	After  int64  `json:"after,omitempty"`
	AfterT string `json:"after_t,omitempty"`
	// Since is the window start of the current cycle.
	Since string `json:"since,omitempty"`

	// LastRV is the rowversion up to which every reception has been read;
	// Bound the MIN_ACTIVE_ROWVERSION() of the current incremental cycle;
	// MaxRV the highest rowversion ever sent.
	LastRV uint64 `json:"last_rv"`
	Bound  uint64 `json:"bound,omitempty"`
	MaxRV  uint64 `json:"max_rv"`
	// PatientMark and ReceptionMark are the highest DateTimeChanged seen.
	PatientMark   string `json:"patient_mark,omitempty"`
	ReceptionMark string `json:"reception_mark,omitempty"`
	// Clock is the last version issued from the connector clock.
	Clock int64 `json:"clock"`

	Known *idSet `json:"known,omitempty"`
	Seen  *idSet `json:"seen,omitempty"`
	// Recent holds the content hash of rows sent whose DateTimeChanged is
	// inside the overlap ("patient/12"); Dict of every dictionary row.
	Recent map[string]recentEntry `json:"recent,omitempty"`
	Dict   map[string]uint64      `json:"dict,omitempty"`

	InitialDone  bool      `json:"initial_done,omitempty"`
	LastRescan   time.Time `json:"last_rescan"`
	LastPatients time.Time `json:"last_patients"`
	LastDict     time.Time `json:"last_dict"`
}

type recentEntry struct {
	Hash    uint64 `json:"h"`
	Changed string `json:"c"`
}

func decodeCursor(raw []byte) (*cursor, error) {
	c := &cursor{V: cursorVersion}
	if len(raw) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(raw, c); err != nil || c.V != cursorVersion {
		return nil, &Error{Message: "Повреждено состояние коннектора: нужна полная перезагрузка данных",
			Err: fmt.Errorf("ident: bad cursor (version %d): %v", c.V, err)}
	}
	return c, nil
}

// plan starts the next cycle.
func (r *Reader) plan(c *cursor, now time.Time) {
	c.After, c.AfterT, c.Bound = 0, "", 0
	c.Since = r.since(now).Format(paramTimeLayout)
	dicts := []string{stepDoctors, stepBranches, stepChairs, stepReasons}
	switch {
	case !c.InitialDone:
		c.Mode = modeInitial
		c.Queue = append(append([]string{stepStart}, dicts...), stepPatients, stepReceptions)
		c.Known = &idSet{}
		c.LastRescan, c.LastPatients, c.LastDict = now, now, now
	case now.Sub(c.LastRescan) >= r.opts.RescanEvery:
		c.Mode = modeRescan
		c.Queue = append(dicts, stepReceptions, stepDeleted)
		if now.Sub(c.LastPatients) >= r.opts.PatientRescanEvery {
			c.Queue = append(c.Queue, stepPatients)
			c.LastPatients = now
		}
		c.Seen = &idSet{}
		c.LastRescan, c.LastDict = now, now
	default:
		c.Mode = modeIncremental
		c.Queue = []string{stepIncReceptions, stepIncPatients}
		if now.Sub(c.LastDict) >= r.opts.DictionaryEvery {
			c.Queue = append(c.Queue, dicts...)
			c.LastDict = now
		}
	}
}

func (r *Reader) since(now time.Time) time.Time {
	if !r.opts.Since.IsZero() {
		return naive(r.opts.Since)
	}
	return naive(now.Add(-r.opts.Window))
}

// naive keeps t's wall clock and drops its zone, like IDENT's datetime.
func naive(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

func parseParamTime(s string) time.Time {
	t, _ := time.Parse(paramTimeLayout, s)
	return t
}

// step runs one page of the current step. done is true when the step has
// nothing more.
func (r *Reader) step(ctx context.Context, c *cursor, now time.Time) (recs []protocol.Record, done bool, err error) {
	n := r.opts.PageSize
	switch c.Queue[0] {
	case stepStart:
		return nil, true, r.stepStart(ctx, c)
	case stepDoctors:
		return r.stepDictionary(ctx, c, now, protocol.KindDoctor, n)
	case stepBranches:
		return r.stepDictionary(ctx, c, now, protocol.KindBranch, n)
	case stepChairs:
		return r.stepDictionary(ctx, c, now, protocol.KindChair, n)
	case stepReasons:
		return r.stepDictionary(ctx, c, now, protocol.KindCancelReason, n)
	case stepPatients:
		return r.stepPatients(ctx, c, now, n)
	case stepReceptions:
		return r.stepWindow(ctx, c, now, n)
	case stepDeleted:
		return r.stepDeleted(ctx, c, now, n)
	case stepIncReceptions:
		return r.stepChangedReceptions(ctx, c, now, n)
	case stepIncPatients:
		return r.stepChangedPatients(ctx, c, now, n)
	}
	return nil, false, fmt.Errorf("ident: unknown cursor step %q", c.Queue[0])
}

func (r *Reader) hasRowVersion() bool { return r.has(tblReceptions, colReceptionsRowVersion) }

// stepStart fixes the marks the first incremental cycle continues from,
// before anything is read.
func (r *Reader) stepStart(ctx context.Context, c *cursor) error {
	if r.hasRowVersion() {
		bound, err := r.waitBound(ctx)
		if err != nil {
			return err
		}
		if bound > 0 {
			c.LastRV = bound - 1
		}
	} else {
		t, err := r.maxChanged(ctx, tblReceptions, colReceptionsDateTimeChanged)
		if err != nil {
			return err
		}
		if !t.IsZero() {
			c.ReceptionMark = t.Format(paramTimeLayout)
		}
	}
	if r.has(tblPatients, colPatientsDateTimeChanged) {
		t, err := r.maxChanged(ctx, tblPatients, colPatientsDateTimeChanged)
		if err != nil {
			return err
		}
		if !t.IsZero() {
			c.PatientMark = t.Format(paramTimeLayout)
		}
	}
	return nil
}

// waitBound asks for MIN_ACTIVE_ROWVERSION() until it is known, for up to a
// few seconds; then it gives up with 0 (read from the very first rowversion:
// slower, never wrong).
func (r *Reader) waitBound(ctx context.Context) (uint64, error) {
	for range 50 {
		bound, ok, err := r.d.minActiveRowVersion(ctx, r.db)
		if err != nil {
			return 0, r.classify(err)
		}
		if ok {
			return bound, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, nil
}

func (c *cursor) nextVersion(now time.Time) int64 {
	v := now.UnixMicro()
	if v <= c.Clock {
		v = c.Clock + 1
	}
	c.Clock = v
	return v
}

func record(kind protocol.Kind, id int64, version int64, data any) (protocol.Record, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return protocol.Record{}, fmt.Errorf("ident: encode %s %d: %w", kind, id, err)
	}
	return protocol.Record{Kind: kind, SourceID: strconv.FormatInt(id, 10), Version: version, Data: b}, nil
}

func contentHash(data any) uint64 {
	b, _ := json.Marshal(data)
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}

func key(kind protocol.Kind, id int64) string { return string(kind) + "/" + strconv.FormatInt(id, 10) }

func (r *Reader) stepDictionary(ctx context.Context, c *cursor, now time.Time, kind protocol.Kind, n int) ([]protocol.Record, bool, error) {
	rows, err := r.dictionary(ctx, kind, c.After, n)
	if err != nil {
		return nil, false, err
	}
	if c.Dict == nil {
		c.Dict = map[string]uint64{}
	}
	var out []protocol.Record
	for _, row := range rows {
		c.After = row.id
		h, k := contentHash(row.data), key(kind, row.id)
		if old, ok := c.Dict[k]; ok && old == h && c.Mode == modeIncremental {
			continue
		}
		c.Dict[k] = h
		rec, err := record(kind, row.id, c.nextVersion(now), row.data)
		if err != nil {
			return nil, false, err
		}
		out = append(out, rec)
	}
	return out, len(rows) < n, nil
}

// stepPatients sends a keyset page of all patients.
func (r *Reader) stepPatients(ctx context.Context, c *cursor, now time.Time, n int) ([]protocol.Record, bool, error) {
	rows, err := r.patientsAfter(ctx, c.After, n)
	if err != nil {
		return nil, false, err
	}
	if err := r.fillFirstVisits(ctx, rows); err != nil {
		return nil, false, err
	}
	out, err := r.emitPatients(c, now, rows, false)
	if err != nil {
		return nil, false, err
	}
	if len(rows) > 0 {
		c.After = rows[len(rows)-1].id
	}
	return out, len(rows) < n, nil
}

// emitPatients turns rows into records and remembers the hash of those
// changed inside the overlap. With skipSame, a row whose hash equals the
// remembered one is not sent again.
func (r *Reader) emitPatients(c *cursor, now time.Time, rows []patientRow, skipSame bool) ([]protocol.Record, error) {
	floor := r.overlapFloor(c.PatientMark)
	out := make([]protocol.Record, 0, len(rows))
	for _, p := range rows {
		h, k := contentHash(&p.data), key(protocol.KindPatient, p.id)
		if old, ok := c.Recent[k]; skipSame && ok && old.Hash == h {
			continue
		}
		if c.PatientMark != "" && !p.changed.IsZero() && !p.changed.Before(floor) {
			if c.Recent == nil {
				c.Recent = map[string]recentEntry{}
			}
			c.Recent[k] = recentEntry{Hash: h, Changed: p.changed.Format(paramTimeLayout)}
		} else {
			delete(c.Recent, k)
		}
		rec, err := record(protocol.KindPatient, p.id, c.nextVersion(now), &p.data)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// overlapFloor is mark - Overlap (zero time when there is no mark).
func (r *Reader) overlapFloor(mark string) time.Time {
	floor := parseParamTime(mark).Add(-r.opts.Overlap)
	if floor.Before(minFloor) {
		// SQL Server's datetime starts in 1753.
		return minFloor
	}
	return floor
}

var minFloor = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// stepWindow sends a keyset page of the receptions in the window.
func (r *Reader) stepWindow(ctx context.Context, c *cursor, now time.Time, n int) ([]protocol.Record, bool, error) {
	rows, err := r.receptionsInWindow(ctx, parseParamTime(c.Since), c.After, n)
	if err != nil {
		return nil, false, err
	}
	set := c.Known
	if c.Mode == modeRescan {
		set = c.Seen
	}
	if set == nil {
		set = &idSet{}
		c.Known = set
	}
	out := make([]protocol.Record, 0, len(rows))
	for _, row := range rows {
		set.Add(row.id)
		rec, err := r.receptionRecord(c, now, row)
		if err != nil {
			return nil, false, err
		}
		out = append(out, rec)
		c.After = row.id
	}
	return out, len(rows) < n, nil
}

func (r *Reader) receptionRecord(c *cursor, now time.Time, row receptionRow) (protocol.Record, error) {
	version := int64(row.rowVersion)
	if row.rowVersion == 0 {
		version = c.nextVersion(now)
	} else if row.rowVersion > c.MaxRV {
		c.MaxRV = row.rowVersion
	}
	return record(protocol.KindReception, row.id, version, &row.data)
}

// stepDeleted reports receptions known from earlier but not seen by this
// re-scan and no longer in Receptions.
func (r *Reader) stepDeleted(ctx context.Context, c *cursor, now time.Time, n int) ([]protocol.Record, bool, error) {
	var candidates []int64
	if c.Known != nil {
		c.Known.Each(func(id int64) bool {
			if id > c.After && (c.Seen == nil || !c.Seen.Has(id)) {
				candidates = append(candidates, id)
			}
			return len(candidates) < n
		})
	}
	if len(candidates) == 0 {
		c.Known, c.Seen = c.Seen, nil
		return nil, true, nil
	}
	exists, err := r.existingReceptions(ctx, candidates)
	if err != nil {
		return nil, false, err
	}
	var version int64
	var out []protocol.Record
	for _, id := range candidates {
		c.After = id
		if exists[id] {
			continue // left the window; forgotten when Known becomes Seen
		}
		if version == 0 {
			if version, err = r.deletedVersion(ctx, c, now); err != nil {
				return nil, false, err
			}
		}
		out = append(out, protocol.Record{Kind: protocol.KindReception, SourceID: strconv.FormatInt(id, 10), Version: version, Deleted: true})
	}
	return out, false, nil
}

// deletedVersion is above every version the deleted row was ever sent with.
func (r *Reader) deletedVersion(ctx context.Context, c *cursor, now time.Time) (int64, error) {
	if !r.hasRowVersion() {
		return c.nextVersion(now), nil
	}
	max, err := r.d.maxRowVersion(ctx, r.db)
	if err != nil {
		return 0, r.classify(err)
	}
	if c.MaxRV > max {
		max = c.MaxRV
	}
	c.MaxRV = max + 1
	return int64(max + 1), nil
}

// stepChangedReceptions sends a page of changed receptions (half a page, so
// their patients fit in the same Read) and their patients.
func (r *Reader) stepChangedReceptions(ctx context.Context, c *cursor, now time.Time, n int) ([]protocol.Record, bool, error) {
	limit := n / 2
	var (
		rows []receptionRow
		err  error
		done bool
	)
	if r.hasRowVersion() {
		if c.Bound == 0 {
			bound, ok, err := r.d.minActiveRowVersion(ctx, r.db)
			if err != nil {
				return nil, false, r.classify(err)
			}
			if !ok || bound <= c.LastRV+1 {
				return nil, true, nil
			}
			c.Bound = bound
		}
		rows, err = r.receptionsByRowVersion(ctx, c.LastRV, c.Bound, limit)
		if err != nil {
			return nil, false, err
		}
		for _, row := range rows {
			c.LastRV = max(c.LastRV, row.rowVersion)
		}
		if done = len(rows) < limit; done {
			c.LastRV, c.Bound = c.Bound-1, 0
		}
	} else {
		if c.AfterT == "" {
			c.AfterT, c.After = r.overlapFloor(c.ReceptionMark).Format(paramTimeLayout), -1
		}
		rows, err = r.receptionsChangedAfter(ctx, parseParamTime(c.AfterT), c.After, limit)
		if err != nil {
			return nil, false, err
		}
		done = len(rows) < limit
	}

	since := parseParamTime(c.Since)
	if c.Known == nil {
		c.Known = &idSet{}
	}
	var out []protocol.Record
	var patients []int64
	for _, row := range rows {
		if !r.hasRowVersion() {
			c.AfterT, c.After = row.changed.Format(paramTimeLayout), row.id
			if mark := row.changed.Format(paramTimeLayout); mark > c.ReceptionMark {
				c.ReceptionMark = mark
			}
		}
		if !slices.Contains(patients, row.patientID) && row.patientID != 0 {
			patients = append(patients, row.patientID)
		}
		if row.planStart.Before(since) {
			continue
		}
		if !r.hasRowVersion() {
			h, k := contentHash(&row.data), key(protocol.KindReception, row.id)
			if old, ok := c.Recent[k]; ok && old.Hash == h {
				continue
			}
			if c.Recent == nil {
				c.Recent = map[string]recentEntry{}
			}
			c.Recent[k] = recentEntry{Hash: h, Changed: row.changed.Format(paramTimeLayout)}
		}
		c.Known.Add(row.id)
		rec, err := r.receptionRecord(c, now, row)
		if err != nil {
			return nil, false, err
		}
		out = append(out, rec)
	}
	if done && !r.hasRowVersion() {
		r.pruneRecent(c, protocol.KindReception, c.ReceptionMark)
	}
	ps, err := r.patientsByID(ctx, patients)
	if err != nil {
		return nil, false, err
	}
	if err := r.fillFirstVisits(ctx, ps); err != nil {
		return nil, false, err
	}
	precs, err := r.emitPatients(c, now, ps, true)
	if err != nil {
		return nil, false, err
	}
	return append(out, precs...), done, nil
}

// stepChangedPatients polls Patients.DateTimeChanged >= mark - Overlap.
func (r *Reader) stepChangedPatients(ctx context.Context, c *cursor, now time.Time, n int) ([]protocol.Record, bool, error) {
	if !r.has(tblPatients, colPatientsDateTimeChanged) {
		return nil, true, nil
	}
	if c.AfterT == "" {
		c.AfterT, c.After = r.overlapFloor(c.PatientMark).Format(paramTimeLayout), -1
	}
	rows, err := r.patientsChangedAfter(ctx, parseParamTime(c.AfterT), c.After, n)
	if err != nil {
		return nil, false, err
	}
	if len(rows) > 0 {
		last := rows[len(rows)-1]
		c.AfterT, c.After = last.changed.Format(paramTimeLayout), last.id
		if mark := last.changed.Format(paramTimeLayout); mark > c.PatientMark {
			c.PatientMark = mark
		}
	}
	if err := r.fillFirstVisits(ctx, rows); err != nil {
		return nil, false, err
	}
	out, err := r.emitPatients(c, now, rows, true)
	if err != nil {
		return nil, false, err
	}
	done := len(rows) < n
	if done {
		r.pruneRecent(c, protocol.KindPatient, c.PatientMark)
	}
	return out, done, nil
}

// pruneRecent forgets hashes of rows of kind changed before mark - Overlap:
// polling will not read them again.
func (r *Reader) pruneRecent(c *cursor, kind protocol.Kind, mark string) {
	floor := r.overlapFloor(mark).Format(paramTimeLayout)
	prefix := string(kind) + "/"
	for k, e := range c.Recent {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix && e.Changed < floor {
			delete(c.Recent, k)
		}
	}
}
