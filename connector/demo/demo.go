package demo

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options shape the generated clinic. The zero value means every default.
type Options struct {
	// Patients is how many patients to create (default DefaultPatients).
	Patients int
	// Seed makes the data reproducible: the same Seed and Now give the same
	// rows (default 1).
	Seed uint64
	// Now is the clinic's current wall-clock time; receptions lie around it
	// (default time.Now(), in the local zone, taken as naive).
	Now time.Time
	// Email adds a Persons.Email column (IDENT's is unconfirmed) and fills it.
	Email bool
}

// DefaultPatients is Options.Patients when zero.
const DefaultPatients = 300

// Cancel reasons with a meaning the connector's configuration refers to.
const (
	ReasonMoved  = 6 // «Перенос по просьбе пациента»
	ReasonNoShow = 8 // «Пациент не пришел», set by IDENT with ReceptionCanceled = PlanEnd
)

// Create makes dsn's database a demo clinic, replacing an earlier demo (see
// the package doc), in one transaction: either the whole clinic is there or
// nothing changed. Errors: ErrNotDemo, or a wrapped database error.
func Create(ctx context.Context, dsn string, opts Options) error {
	if opts.Patients <= 0 {
		opts.Patients = DefaultPatients
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	now := wall(opts.Now)

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("demo: connect: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("demo: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if err := reset(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("demo: create schema: %w", err)
	}
	if opts.Email {
		if _, err := tx.Exec(ctx, `ALTER TABLE dbo."Persons" ADD "Email" varchar(200)`); err != nil {
			return fmt.Errorf("demo: add Email: %w", err)
		}
	}
	c := generate(opts, now)
	if err := c.insert(ctx, tx, opts.Email); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO svyazka_demo.info (seed, patients) VALUES ($1, $2)`, int64(opts.Seed), opts.Patients); err != nil {
		return fmt.Errorf("demo: info: %w", err)
	}
	return tx.Commit(ctx)
}

// wall keeps t's local wall clock, dropped of its zone, at millisecond
// precision like timestamp(3).
func wall(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e6*1e6, time.UTC)
}

type person struct {
	id                             int
	surname, name, patronymic      string
	birthday, mobile, phone, email *string
	male                           bool
}

type patient struct {
	person
	card, parent      string
	archived          bool
	changed           *time.Time
	firstConsultation *time.Time
}

type staff struct {
	person
	archived bool
}

type reception struct {
	id, patient, doctor, chair, addedBy int
	planStart, planEnd                  time.Time
	appeared, started, ended, check     *time.Time
	canceled                            *time.Time
	reason, canceledBy                  int
	cancelComment, comment              string
	from                                *reception
	added, changed                      time.Time
	rowVersion                          int64
}

type clinic struct {
	rng        *rand.Rand
	now        time.Time
	persons    int
	staffs     []staff
	patients   []patient
	receptions []*reception
	doctors    []int // active doctor ids
	oldDoctor  int   // the archived one
	admin      int
}

var branches = []struct {
	id               int
	name, branchName string
}{
	{1, `ООО "Улыбка"`, "Улыбка на Ленина"},
	{2, `ООО "Улыбка"`, ""},
}

var chairs = []struct {
	id, branch int
	name       string
	archive    bool
}{
	{1, 1, "Кресло 1", false},
	{2, 1, "Кресло 2", false},
	{3, 1, "Хирургия", false},
	{4, 2, "Кресло 1", false},
	{5, 2, "Старое кресло", true},
}

var cancelReasons = []struct {
	id   int
	name string
}{
	{1, "Отмена по просьбе пациента"},
	{2, "Болезнь врача"},
	{3, "Пациент отказался от лечения"},
	{4, "Ошибка записи"},
	{5, "Отмена по инициативе клиники"},
	{ReasonMoved, "Перенос по просьбе пациента"},
	{7, "Перенос по инициативе клиники"},
	{ReasonNoShow, "Пациент не пришел"},
	{9, "Иное"},
}

func generate(opts Options, now time.Time) *clinic {
	c := &clinic{rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5eed)), now: now}
	// Staff and patients share the Persons sequence, staff interleaved.
	for i := range 8 {
		st := staff{person: c.newPerson(30+c.rng.IntN(30), c.rng.IntN(2) == 0, opts.Email)}
		switch {
		case i == 6:
			st.archived = true
			c.oldDoctor = st.id
		case i == 7:
			c.admin = st.id
		default:
			c.doctors = append(c.doctors, st.id)
		}
		c.staffs = append(c.staffs, st)
		c.persons += c.rng.IntN(3) // gaps, as in real data
	}
	for i := 0; i < opts.Patients; i++ {
		var p patient
		if i > 0 && c.rng.IntN(100) < 15 {
			// A child on a parent's card phone.
			parent := c.patients[c.rng.IntN(len(c.patients))]
			p = patient{person: c.newPerson(3+c.rng.IntN(14), c.rng.IntN(2) == 0, opts.Email)}
			p.surname = surnameFor(baseSurname(parent.surname, parent.male), p.male)
			p.mobile, p.phone = parent.mobile, nil
			p.parent = parent.surname + " " + parent.name + " " + parent.patronymic
		} else {
			p = patient{person: c.newPerson(18+c.rng.IntN(60), c.rng.IntN(2) == 0, opts.Email)}
		}
		switch r := c.rng.IntN(20); {
		case r == 0:
			p.card = ""
		case r == 1:
			p.card = strconv.Itoa(1000+i) + "а"
		default:
			p.card = strconv.Itoa(1000 + i)
		}
		p.archived = c.rng.IntN(100) < 3
		if c.rng.IntN(10) > 0 {
			t := c.now.Add(-time.Duration(c.rng.IntN(730*24)) * time.Hour).Add(time.Duration(c.rng.IntN(3600000)) * time.Millisecond)
			p.changed = &t
		}
		c.patients = append(c.patients, p)
		c.receptionsFor(p.id)
		if i%25 == 0 {
			c.persons++ // an administrator added later took an id
		}
	}
	c.finish()
	return c
}

func (c *clinic) newPerson(age int, male, withEmail bool) person {
	c.persons++
	p := person{id: c.persons, male: male}
	p.surname = surnameFor(pick(c.rng, surnames), male)
	father := pick(c.rng, maleNames)
	if male {
		p.name = pick(c.rng, maleNames)
	} else {
		p.name = pick(c.rng, femaleNames)
	}
	p.patronymic = patronymic(father, male)
	if c.rng.IntN(30) == 0 {
		p.patronymic = ""
	}
	born := c.now.AddDate(-age, -c.rng.IntN(12), -c.rng.IntN(28))
	p.birthday = birthdayText(c.rng, born)
	p.mobile, p.phone = phones(c.rng)
	if withEmail && c.rng.IntN(3) == 0 {
		e := translitEmail(c.rng, p.id)
		p.email = &e
	}
	return p
}

// slot is a 15-minute grid time between 9:00 and 19:45 on day.
func (c *clinic) slot(day time.Time) time.Time {
	d := time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, time.UTC)
	return d.Add(time.Duration(c.rng.IntN(44)) * 15 * time.Minute)
}

func (c *clinic) stamp(t time.Time, maxSeconds int) *time.Time {
	v := t.Add(time.Duration(c.rng.IntN(maxSeconds*1000+1)) * time.Millisecond)
	// SQL Server datetime ticks: milliseconds end in 0, 3 or 7.
	v = v.Truncate(10 * time.Millisecond).Add(time.Duration([]int{0, 3, 7}[c.rng.IntN(3)]) * time.Millisecond)
	return &v
}

func (c *clinic) receptionsFor(patientID int) {
	n := c.rng.IntN(8)
	for range n {
		day := c.now.AddDate(0, 0, -c.rng.IntN(730)+c.rng.IntN(60))
		c.addReception(patientID, c.slot(day), nil)
	}
}

// addReception creates one reception and decides its fate by its time.
func (c *clinic) addReception(patientID int, start time.Time, from *reception) *reception {
	r := &reception{patient: patientID, planStart: start, addedBy: c.admin, from: from}
	minutes := []int{15, 30, 30, 45, 60, 90}[c.rng.IntN(6)]
	if c.rng.IntN(50) == 0 {
		minutes = 0 // zero-length rows exist in IDENT
	}
	r.planEnd = start.Add(time.Duration(minutes) * time.Minute)
	r.doctor = c.doctors[c.rng.IntN(len(c.doctors))]
	r.chair = chairs[c.rng.IntN(4)].id
	if start.Before(c.now.AddDate(-1, 0, 0)) && c.rng.IntN(4) == 0 {
		r.doctor, r.chair = c.oldDoctor, 5
	}
	r.comment = pick(c.rng, comments)
	if from != nil {
		r.added = *from.canceled
	} else {
		r.added = *c.stamp(start.Add(-time.Duration(1+c.rng.IntN(30*24))*time.Hour), 3600)
	}
	if r.added.After(c.now) {
		r.added = c.now.Add(-time.Hour)
	}
	c.receptions = append(c.receptions, r)

	if start.After(c.now) {
		if c.rng.IntN(20) == 0 {
			r.canceled = c.stamp(r.added.Add(time.Hour), 3600)
			r.reason, r.canceledBy = 1, c.admin
		}
		return r
	}
	switch roll := c.rng.IntN(100); {
	case roll < 70: // completed
		r.appeared = c.stamp(start.Add(-10*time.Minute), 600)
		r.started = c.stamp(start, 300)
		r.ended = c.stamp(r.planEnd, 600)
		if c.rng.IntN(100) < 85 {
			r.check = c.stamp(r.ended.Add(time.Minute), 300)
		}
	case roll < 78: // IDENT's own no-show mark
		end := r.planEnd
		r.canceled, r.reason = &end, ReasonNoShow
	case roll < 82: // unmarked no-show: nothing set
	case roll < 88: // cancelled in advance
		r.canceled = c.stamp(start.Add(-time.Duration(1+c.rng.IntN(72))*time.Hour), 3600)
		r.reason, r.canceledBy = []int{1, 3, 5}[c.rng.IntN(3)], c.admin
	case roll < 94 && from == nil: // moved: cancelled with reason 6 and rebooked
		r.canceled = c.stamp(start.Add(-time.Duration(2+c.rng.IntN(48))*time.Hour), 3600)
		if r.canceled.Before(r.added) {
			r.canceled = c.stamp(r.added, 60)
		}
		r.reason, r.canceledBy = ReasonMoved, c.admin
		r.cancelComment = "Перенос по просьбе пациента"
		c.addReception(patientID, c.slot(start.AddDate(0, 0, 1+c.rng.IntN(14))), r)
	default: // arrived, never closed
		r.appeared = c.stamp(start.Add(-5*time.Minute), 300)
	}
	return r
}

// finish assigns ids in creation order, rowversions in last-change order and
// the patients' FirstConsultation.
func (c *clinic) finish() {
	for _, r := range c.receptions {
		r.changed = r.added
		for _, t := range []*time.Time{r.appeared, r.started, r.ended, r.check, r.canceled} {
			if t != nil && t.After(r.changed) && !t.After(c.now) {
				r.changed = *t
			}
		}
	}
	sort.SliceStable(c.receptions, func(i, j int) bool { return c.receptions[i].added.Before(c.receptions[j].added) })
	for i, r := range c.receptions {
		r.id = i + 1
	}
	byChange := append([]*reception(nil), c.receptions...)
	sort.SliceStable(byChange, func(i, j int) bool { return byChange[i].changed.Before(byChange[j].changed) })
	for i, r := range byChange {
		r.rowVersion = int64(i + 1)
	}
	first := map[int]time.Time{}
	for _, r := range c.receptions {
		if r.canceled == nil && r.reason == 0 && (r.ended != nil || r.check != nil) {
			if f, ok := first[r.patient]; !ok || r.planStart.Before(f) {
				first[r.patient] = r.planStart
			}
		}
	}
	for i := range c.patients {
		if f, ok := first[c.patients[i].id]; ok {
			t := f.Add(time.Duration(c.rng.IntN(900)) * time.Millisecond)
			c.patients[i].firstConsultation = &t
		}
	}
}

func (c *clinic) insert(ctx context.Context, tx pgx.Tx, withEmail bool) error {
	for _, b := range branches {
		if _, err := tx.Exec(ctx, `INSERT INTO dbo."OwnCompanies" ("ID","Name","BranchName") VALUES ($1,$2,$3)`, b.id, b.name, b.branchName); err != nil {
			return fmt.Errorf("demo: branches: %w", err)
		}
	}
	for _, ch := range chairs {
		if _, err := tx.Exec(ctx, `INSERT INTO dbo."Armchairs" ("ID","NameArmchair","ID_OwnCompanies","Archive") VALUES ($1,$2,$3,$4)`, ch.id, ch.name, ch.branch, ch.archive); err != nil {
			return fmt.Errorf("demo: chairs: %w", err)
		}
	}
	for _, cr := range cancelReasons {
		if _, err := tx.Exec(ctx, `INSERT INTO dbo."ReceptionCancelReasons" ("ID","Name") VALUES ($1,$2)`, cr.id, cr.name); err != nil {
			return fmt.Errorf("demo: cancel reasons: %w", err)
		}
	}

	personCols := []string{"ID", "Surname", "Name", "Patronymic", "Birthday", "MobilePhone", "Phone"}
	if withEmail {
		personCols = append(personCols, "Email")
	}
	var persons [][]any
	addPerson := func(p person) {
		row := []any{p.id, p.surname, p.name, p.patronymic, p.birthday, p.mobile, p.phone}
		if withEmail {
			row = append(row, p.email)
		}
		persons = append(persons, row)
	}
	var staffRows, patientRows [][]any
	for _, s := range c.staffs {
		addPerson(s.person)
		staffRows = append(staffRows, []any{s.id, s.archived})
	}
	for _, p := range c.patients {
		addPerson(p.person)
		var archiving *int
		if p.archived {
			one := 1
			archiving = &one
		}
		status := 1
		if p.firstConsultation != nil {
			status = 3
		}
		patientRows = append(patientRows, []any{p.id, p.card, p.card, p.parent, archiving, p.firstConsultation, p.firstConsultation,
			p.changed, status, true, false, "0"})
	}
	if err := copyRows(ctx, tx, "Persons", personCols, persons); err != nil {
		return err
	}
	if err := copyRows(ctx, tx, "Staffs", []string{"ID_Persons", "Archive"}, staffRows); err != nil {
		return err
	}
	if err := copyRows(ctx, tx, "Patients", []string{"ID_Persons", "CardNumber", "PatientNumber", "ParentSNP", "ID_ArchivingReasons",
		"FirstConsultation", "FirstTreat", "DateTimeChanged", "Status", "ConformToSending", "SMSRejection", "InitialBalance"}, patientRows); err != nil {
		return err
	}

	var recs [][]any
	for _, r := range c.receptions {
		var from, reason, canceledBy *int
		if r.from != nil {
			from = &r.from.id
		}
		if r.reason != 0 {
			reason = &r.reason
		}
		if r.canceledBy != 0 {
			canceledBy = &r.canceledBy
		}
		recs = append(recs, []any{r.id, r.patient, r.addedBy, r.added.Add(500 * time.Millisecond), r.comment,
			r.appeared, r.started, r.ended, r.check, r.planStart, r.planEnd, r.doctor, r.chair,
			reason, r.cancelComment, canceledBy, r.canceled, from, rowVersionBytes(r.rowVersion),
			r.addedBy, r.added, r.changed, false, false})
	}
	if err := copyRows(ctx, tx, "Receptions", []string{"ID", "ID_Patients", "ID_StaffsReceptionAdded", "ReceptionAdded", "Comment",
		"PatientAppeared", "ReceptionStarted", "ReceptionEnded", "CheckIssued", "PlanStart", "PlanEnd", "ID_Staffs", "ID_Armchairs",
		"ID_ReceptionCancelReasons", "CancelReasonComment", "ID_StaffsReceptionCanceled", "ReceptionCanceled", "ID_ReceptionsTransferFrom",
		"RowVersion", "ID_StaffsAdded", "DateTimeAdded", "DateTimeChanged", "IsNotified", "NeedHandReminder"}, recs); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SELECT setval('svyazka_demo.rowversion', $1), setval('svyazka_demo.persons', $2), setval('svyazka_demo.receptions', $3)`,
		int64(len(c.receptions))+1, int64(c.persons)+1, int64(len(c.receptions))+1)
	if err != nil {
		return fmt.Errorf("demo: sequences: %w", err)
	}
	return nil
}

func copyRows(ctx context.Context, tx pgx.Tx, table string, cols []string, rows [][]any) error {
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"dbo", table}, cols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("demo: fill %s: %w", table, err)
	}
	return nil
}

func rowVersionBytes(v int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(v))
}
