package ident

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/svyazka/svyazka/connector/protocol"
)

// The query text below is shared by both dialects and built only from the
// names in schema.go. Optional columns that the database lacks are selected
// as NULL.

// paramTimeLayout renders a naive local time for a bind parameter that the
// query casts back (CAST(@p AS datetime) / CAST($n AS timestamp)); ISO 8601
// with "T" is read the same under every SQL Server language setting.
const paramTimeLayout = "2006-01-02T15:04:05.000"

func (d dialect) timeParam(n int) string {
	if d.isSQLServer() {
		return "CAST(" + d.ph(n) + " AS datetime)"
	}
	return "CAST(" + d.ph(n) + " AS timestamp)"
}

// opt is alias.column when the database has it, else NULL.
func (r *Reader) opt(alias, table, col string) string {
	if r.has(table, col) {
		return r.d.col(alias, col)
	}
	return "NULL"
}

func (r *Reader) optText(alias, table, col string) string {
	if r.has(table, col) {
		return r.d.asText(r.d.col(alias, col))
	}
	return "NULL"
}

// ---- patients ----

type patientRow struct {
	id   int64
	data protocol.IdentPatient
	// changed is Patients.DateTimeChanged, zero when NULL.
	changed time.Time
}

func (r *Reader) patientSelect(n int) string {
	d := r.d
	return "SELECT " + d.top(n) + strings.Join([]string{
		d.col("pa", colPatientsPerson),
		d.col("pa", colPatientsCardNumber),
		r.opt("pa", tblPatients, colPatientsParentSNP),
		r.opt("pa", tblPatients, colPatientsArchivingReason),
		r.opt("pa", tblPatients, colPatientsFirstConsultation),
		r.opt("pa", tblPatients, colPatientsDateTimeChanged),
		d.col("pe", colPersonsSurname),
		d.col("pe", colPersonsName),
		d.col("pe", colPersonsPatronymic),
		r.optText("pe", tblPersons, colPersonsBirthday),
		r.opt("pe", tblPersons, colPersonsMobile),
		r.opt("pe", tblPersons, colPersonsPhone),
		r.opt("pe", tblPersons, colPersonsEmail),
		r.optText("pe", tblPersons, colPersonsSex),
	}, ", ") +
		" FROM " + d.table(tblPatients) + " pa JOIN " + d.table(tblPersons) + " pe ON " +
		d.col("pe", colPersonsID) + " = " + d.col("pa", colPatientsPerson)
}

// patientsAfter is a keyset page of patients by id.
func (r *Reader) patientsAfter(ctx context.Context, after int64, n int) ([]patientRow, error) {
	d := r.d
	q := r.patientSelect(n) + " WHERE " + d.col("pa", colPatientsPerson) + " > " + d.ph(1) +
		" ORDER BY " + d.col("pa", colPatientsPerson) + d.limit(n)
	return r.queryPatients(ctx, q, after)
}

// patientsChangedAfter is a keyset page of patients by (DateTimeChanged, id).
func (r *Reader) patientsChangedAfter(ctx context.Context, t time.Time, id int64, n int) ([]patientRow, error) {
	d := r.d
	dtc := d.col("pa", colPatientsDateTimeChanged)
	pid := d.col("pa", colPatientsPerson)
	q := r.patientSelect(n) + " WHERE (" + dtc + " > " + d.timeParam(1) + " OR (" + dtc + " = " + d.timeParam(2) +
		" AND " + pid + " > " + d.ph(3) + ")) ORDER BY " + dtc + ", " + pid + d.limit(n)
	ts := t.Format(paramTimeLayout)
	return r.queryPatients(ctx, q, ts, ts, id)
}

// patientsByID reads the given patients (at most a page).
func (r *Reader) patientsByID(ctx context.Context, ids []int64) ([]patientRow, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	d := r.d
	q := r.patientSelect(len(ids)) + " WHERE " + d.col("pa", colPatientsPerson) + " IN (" + d.phs(1, len(ids)) +
		") ORDER BY " + d.col("pa", colPatientsPerson) + d.limit(len(ids))
	return r.queryPatients(ctx, q, int64Args(ids)...)
}

func (r *Reader) queryPatients(ctx context.Context, q string, args ...any) ([]patientRow, error) {
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, r.classify(err)
	}
	defer rows.Close()
	var out []patientRow
	for rows.Next() {
		var (
			id                                      int64
			card, parent, surname, name, patronymic sql.NullString
			birthday, mobile, phone, email, sex     sql.NullString
			archiving                               sql.NullInt64
			firstConsultation, changed              sql.NullTime
		)
		if err := rows.Scan(&id, &card, &parent, &archiving, &firstConsultation, &changed,
			&surname, &name, &patronymic, &birthday, &mobile, &phone, &email, &sex); err != nil {
			return nil, r.classify(err)
		}
		p := patientRow{id: id}
		if changed.Valid {
			p.changed = changed.Time
		}
		p.data = protocol.IdentPatient{
			Surname:           clean(surname, protocol.MaxNameLen),
			Name:              clean(name, protocol.MaxNameLen),
			Patronymic:        clean(patronymic, protocol.MaxNameLen),
			CardNumber:        clean(card, protocol.MaxNameLen),
			MobilePhone:       clean(mobile, protocol.MaxPhoneLen),
			Phone:             clean(phone, protocol.MaxPhoneLen),
			Email:             clean(email, protocol.MaxNameLen),
			BirthdayRaw:       clean(birthday, protocol.MaxNameLen),
			SexRaw:            clean(sex, protocol.MaxNameLen),
			ParentName:        clean(parent, protocol.MaxNameLen),
			Archived:          archiving.Valid,
			ArchivingReasonID: idText(archiving),
			FirstConsultation: localText(firstConsultation),
			DateTimeChanged:   localText(changed),
		}
		p.data.BirthDate = parseBirthday(p.data.BirthdayRaw, r.opts.Now())
		p.data.Sex = parseSex(p.data.SexRaw)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, r.classify(err)
	}
	return out, nil
}

// fillFirstVisits sets the first-visit facts of ps over each patient's full
// history (spec §6): the earliest completed reception by PlanStart, then ID,
// where completed means not cancelled (no ReceptionCanceled, no cancel
// reason) and ReceptionEnded or CheckIssued set.
func (r *Reader) fillFirstVisits(ctx context.Context, ps []patientRow) error {
	if len(ps) == 0 {
		return nil
	}
	d := r.d
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.id
	}
	pat, id, start := d.col("r", colReceptionsPatient), d.col("r", colReceptionsID), d.col("r", colReceptionsPlanStart)
	q := "SELECT " + pat + ", " + id + ", " + start + " FROM " + d.table(tblReceptions) + " r WHERE " +
		pat + " IN (" + d.phs(1, len(ids)) + ")" +
		" AND " + d.col("r", colReceptionsReceptionCanceled) + " IS NULL" +
		" AND " + d.col("r", colReceptionsCancelReason) + " IS NULL" +
		" AND (" + d.col("r", colReceptionsReceptionEnded) + " IS NOT NULL OR " + d.col("r", colReceptionsCheckIssued) + " IS NOT NULL)" +
		" AND " + start + " IS NOT NULL"
	rows, err := r.db.QueryContext(ctx, q, int64Args(ids)...)
	if err != nil {
		return r.classify(err)
	}
	defer rows.Close()
	type first struct {
		id    int64
		start time.Time
		count int
	}
	firsts := map[int64]*first{}
	for rows.Next() {
		var pid, rid int64
		var ps time.Time
		if err := rows.Scan(&pid, &rid, &ps); err != nil {
			return r.classify(err)
		}
		f := firsts[pid]
		if f == nil {
			firsts[pid] = &first{id: rid, start: ps, count: 1}
			continue
		}
		f.count++
		if ps.Before(f.start) || ps.Equal(f.start) && rid < f.id {
			f.id, f.start = rid, ps
		}
	}
	if err := rows.Err(); err != nil {
		return r.classify(err)
	}
	for i := range ps {
		if f := firsts[ps[i].id]; f != nil {
			ps[i].data.FirstVisitReceptionID = strconv.FormatInt(f.id, 10)
			ps[i].data.FirstVisitPlanStart = f.start.Format(protocol.LocalTimeLayout)
			ps[i].data.CompletedReceptions = f.count
		}
	}
	return nil
}

// ---- receptions ----

type receptionRow struct {
	id         int64
	patientID  int64
	planStart  time.Time
	changed    time.Time
	rowVersion uint64 // 0 when the column is missing
	data       protocol.IdentReception
}

func (r *Reader) receptionSelect(n int) string {
	d := r.d
	return "SELECT " + d.top(n) + strings.Join([]string{
		d.col("r", colReceptionsID),
		d.col("r", colReceptionsPatient),
		d.col("r", colReceptionsStaff),
		d.col("r", colReceptionsChair),
		d.col("a", colArmchairsBranch),
		d.col("r", colReceptionsPlanStart),
		d.col("r", colReceptionsPlanEnd),
		d.col("r", colReceptionsPatientAppeared),
		d.col("r", colReceptionsReceptionStarted),
		d.col("r", colReceptionsReceptionEnded),
		d.col("r", colReceptionsCheckIssued),
		d.col("r", colReceptionsReceptionCanceled),
		d.col("r", colReceptionsCancelReason),
		r.opt("r", tblReceptions, colReceptionsCancelComment),
		r.opt("r", tblReceptions, colReceptionsCanceledBy),
		r.opt("r", tblReceptions, colReceptionsTransferFrom),
		d.col("r", colReceptionsComment),
		d.col("r", colReceptionsDateTimeAdded),
		d.col("r", colReceptionsDateTimeChanged),
		r.opt("r", tblReceptions, colReceptionsRowVersion),
	}, ", ") +
		" FROM " + d.table(tblReceptions) + " r LEFT JOIN " + d.table(tblArmchairs) + " a ON " +
		d.col("a", colArmchairsID) + " = " + d.col("r", colReceptionsChair)
}

// receptionsInWindow is a keyset page by ID of receptions with PlanStart >=
// since.
func (r *Reader) receptionsInWindow(ctx context.Context, since time.Time, after int64, n int) ([]receptionRow, error) {
	d := r.d
	id := d.col("r", colReceptionsID)
	q := r.receptionSelect(n) + " WHERE " + d.col("r", colReceptionsPlanStart) + " >= " + d.timeParam(1) +
		" AND " + id + " > " + d.ph(2) + " ORDER BY " + id + d.limit(n)
	return r.queryReceptions(ctx, q, since.Format(paramTimeLayout), after)
}

// receptionsByRowVersion is a page of receptions with last < RowVersion <
// bound, in rowversion order.
func (r *Reader) receptionsByRowVersion(ctx context.Context, last, bound uint64, n int) ([]receptionRow, error) {
	d := r.d
	rv := d.col("r", colReceptionsRowVersion)
	q := r.receptionSelect(n) + " WHERE " + rv + " > " + d.rowVersionParam(1) + " AND " + rv + " < " + d.rowVersionParam(2) +
		" ORDER BY " + rv + d.limit(n)
	return r.queryReceptions(ctx, q, encodeRowVersion(last), encodeRowVersion(bound))
}

// receptionsChangedAfter is a keyset page by (DateTimeChanged, ID), used when
// the database has no RowVersion.
func (r *Reader) receptionsChangedAfter(ctx context.Context, t time.Time, after int64, n int) ([]receptionRow, error) {
	d := r.d
	dtc, id := d.col("r", colReceptionsDateTimeChanged), d.col("r", colReceptionsID)
	q := r.receptionSelect(n) + " WHERE (" + dtc + " > " + d.timeParam(1) + " OR (" + dtc + " = " + d.timeParam(2) +
		" AND " + id + " > " + d.ph(3) + ")) ORDER BY " + dtc + ", " + id + d.limit(n)
	ts := t.Format(paramTimeLayout)
	return r.queryReceptions(ctx, q, ts, ts, after)
}

func (r *Reader) queryReceptions(ctx context.Context, q string, args ...any) ([]receptionRow, error) {
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, r.classify(err)
	}
	defer rows.Close()
	var out []receptionRow
	for rows.Next() {
		var (
			id                                                      int64
			patient, staff, chair, branch, reason, canceledBy, from sql.NullInt64
			planStart, planEnd, appeared, started, ended, check     sql.NullTime
			canceled, added, changed                                sql.NullTime
			cancelComment, comment                                  sql.NullString
			rv                                                      []byte
		)
		if err := rows.Scan(&id, &patient, &staff, &chair, &branch, &planStart, &planEnd,
			&appeared, &started, &ended, &check, &canceled, &reason, &cancelComment, &canceledBy, &from,
			&comment, &added, &changed, &rv); err != nil {
			return nil, r.classify(err)
		}
		row := receptionRow{id: id, patientID: patient.Int64, planStart: planStart.Time, changed: changed.Time}
		if rv != nil {
			v, err := decodeRowVersion(rv)
			if err != nil {
				return nil, err
			}
			row.rowVersion = v
		}
		row.data = protocol.IdentReception{
			PatientID:           idText(patient),
			StaffID:             idText(staff),
			ChairID:             idText(chair),
			BranchID:            idText(branch),
			PlanStart:           localText(planStart),
			PlanEnd:             localText(planEnd),
			PatientAppeared:     localText(appeared),
			ReceptionStarted:    localText(started),
			ReceptionEnded:      localText(ended),
			CheckIssued:         localText(check),
			ReceptionCanceled:   localText(canceled),
			CancelReasonID:      idText(reason),
			CancelReasonComment: clean(cancelComment, protocol.MaxTextLen),
			CanceledByStaffID:   idText(canceledBy),
			TransferFromID:      idText(from),
			Comment:             clean(comment, protocol.MaxTextLen),
			DateTimeAdded:       localText(added),
			DateTimeChanged:     localText(changed),
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, r.classify(err)
	}
	return out, nil
}

// existingReceptions returns which of ids still exist.
func (r *Reader) existingReceptions(ctx context.Context, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	d := r.d
	q := "SELECT " + d.col("r", colReceptionsID) + " FROM " + d.table(tblReceptions) + " r WHERE " +
		d.col("r", colReceptionsID) + " IN (" + d.phs(1, len(ids)) + ")"
	rows, err := r.db.QueryContext(ctx, q, int64Args(ids)...)
	if err != nil {
		return nil, r.classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, r.classify(err)
		}
		out[id] = true
	}
	return out, r.classify(rows.Err())
}

// maxChanged is max(DateTimeChanged) of a table (zero when empty or NULL).
func (r *Reader) maxChanged(ctx context.Context, table, col string) (time.Time, error) {
	var t sql.NullTime
	q := "SELECT max(" + r.d.quote(col) + ") FROM " + r.d.table(table)
	if err := r.db.QueryRowContext(ctx, q).Scan(&t); err != nil {
		return time.Time{}, r.classify(err)
	}
	return t.Time, nil
}

// ---- dictionaries ----

type dictRow struct {
	id   int64
	kind protocol.Kind
	data any
}

// dictionary pages one of the four small tables by id.
func (r *Reader) dictionary(ctx context.Context, kind protocol.Kind, after int64, n int) ([]dictRow, error) {
	d := r.d
	var q string
	switch kind {
	case protocol.KindDoctor:
		id := d.col("s", colStaffsPerson)
		q = "SELECT " + d.top(n) + id + ", " + d.col("pe", colPersonsSurname) + ", " + d.col("pe", colPersonsName) + ", " +
			d.col("pe", colPersonsPatronymic) + ", " + r.opt("s", tblStaffs, colStaffsArchive) +
			" FROM " + d.table(tblStaffs) + " s LEFT JOIN " + d.table(tblPersons) + " pe ON " + d.col("pe", colPersonsID) + " = " + id +
			" WHERE " + id + " > " + d.ph(1) + " ORDER BY " + id + d.limit(n)
	case protocol.KindBranch:
		id := d.col("o", colOwnCompaniesID)
		q = "SELECT " + d.top(n) + id + ", " + d.col("o", colOwnCompaniesName) + ", " + r.opt("o", tblOwnCompanies, colOwnCompaniesBranchName) +
			" FROM " + d.table(tblOwnCompanies) + " o WHERE " + id + " > " + d.ph(1) + " ORDER BY " + id + d.limit(n)
	case protocol.KindChair:
		id := d.col("a", colArmchairsID)
		q = "SELECT " + d.top(n) + id + ", " + d.col("a", colArmchairsName) + ", " + d.col("a", colArmchairsBranch) + ", " +
			r.opt("a", tblArmchairs, colArmchairsArchive) +
			" FROM " + d.table(tblArmchairs) + " a WHERE " + id + " > " + d.ph(1) + " ORDER BY " + id + d.limit(n)
	case protocol.KindCancelReason:
		id := d.col("c", colCancelReasonsID)
		q = "SELECT " + d.top(n) + id + ", " + r.opt("c", tblCancelReasons, colCancelReasonsName) +
			" FROM " + d.table(tblCancelReasons) + " c WHERE " + id + " > " + d.ph(1) + " ORDER BY " + id + d.limit(n)
	default:
		return nil, fmt.Errorf("ident: no dictionary %q", kind)
	}
	rows, err := r.db.QueryContext(ctx, q, after)
	if err != nil {
		return nil, r.classify(err)
	}
	defer rows.Close()
	var out []dictRow
	for rows.Next() {
		var (
			id      int64
			a, b, c sql.NullString
			branch  sql.NullInt64
			archive sql.NullBool
		)
		row := dictRow{kind: kind}
		switch kind {
		case protocol.KindDoctor:
			err = rows.Scan(&id, &a, &b, &c, &archive)
			row.data = &protocol.IdentDoctor{Surname: clean(a, protocol.MaxNameLen), Name: clean(b, protocol.MaxNameLen),
				Patronymic: clean(c, protocol.MaxNameLen), Archived: archive.Bool}
		case protocol.KindBranch:
			err = rows.Scan(&id, &a, &b)
			row.data = &protocol.IdentBranch{Name: clean(a, protocol.MaxNameLen), BranchName: clean(b, protocol.MaxNameLen)}
		case protocol.KindChair:
			err = rows.Scan(&id, &a, &branch, &archive)
			row.data = &protocol.IdentChair{Name: clean(a, protocol.MaxNameLen), BranchID: idText(branch), Archived: archive.Bool}
		case protocol.KindCancelReason:
			err = rows.Scan(&id, &a)
			row.data = &protocol.IdentCancelReason{Name: clean(a, protocol.MaxNameLen)}
		}
		if err != nil {
			return nil, r.classify(err)
		}
		row.id = id
		out = append(out, row)
	}
	return out, r.classify(rows.Err())
}

// ---- value helpers ----

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

func idText(n sql.NullInt64) string {
	if !n.Valid {
		return ""
	}
	return strconv.FormatInt(n.Int64, 10)
}

// localText renders a naive datetime as IDENT has it, without conversion.
func localText(t sql.NullTime) string {
	if !t.Valid {
		return ""
	}
	return t.Time.Format(protocol.LocalTimeLayout)
}

// clean trims and bounds a text value so the payload always validates.
func clean(s sql.NullString, max int) string {
	if !s.Valid {
		return ""
	}
	v := strings.TrimSpace(strings.ToValidUTF8(s.String, "\uFFFD"))
	if utf8.RuneCountInString(v) > max {
		v = string([]rune(v)[:max])
	}
	return v
}

// parseBirthday parses the text forms IDENT's Birthday takes (dd.mm.yyyy,
// yyyy-mm-dd, either with a time after it, dd/mm/yyyy) and rejects
// impossible dates and the 01.01.1900 placeholder. It returns DateLayout or
// "".
func parseBirthday(raw string, now time.Time) string {
	s := strings.TrimSpace(raw)
	if s == "" {
		return ""
	}
	if i := strings.IndexAny(s, " T"); i > 0 {
		s = s[:i]
	}
	var t time.Time
	var err error = fmt.Errorf("no layout")
	for _, layout := range []string{"02.01.2006", "2.1.2006", "2006-01-02", "02/01/2006", "2/1/2006", "2006.01.02"} {
		if t, err = time.Parse(layout, s); err == nil {
			break
		}
	}
	if err != nil {
		return ""
	}
	if t.Year() <= 1900 || t.After(now) {
		return ""
	}
	return t.Format(protocol.DateLayout)
}

// parseSex understands the letter forms only; IDENT's own coding of a Sex
// column is unknown (spec: [G]), so numbers stay in SexRaw alone.
func parseSex(raw string) string {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "м", "m", "муж", "мужской", "male":
		return "male"
	case "ж", "f", "жен", "женский", "female":
		return "female"
	}
	return ""
}
