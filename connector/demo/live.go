package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// LiveOptions tune Live. The zero value means every default.
type LiveOptions struct {
	// Interval is the pause between two changes (default 2s).
	Interval time.Duration
	// Seed makes the sequence of actions reproducible (default: the time).
	Seed uint64
	// Now is the clock (time.Now); its local wall clock is written, naive.
	Now func() time.Time
	// Logf, when set, is told each change.
	Logf func(format string, args ...any)
}

// Live keeps changing the demo clinic in dsn until ctx ends, one small
// transaction per change, like the front desk would: new bookings (sometimes
// of a new patient), arrivals, starts and completions with a check,
// moves (reason 6 plus ID_ReceptionsTransferFrom on the new reception),
// cancellations and phone edits. Every written reception gets the next
// rowversion (RowVersionExpr) in the statement that writes it. It returns nil
// when ctx ends, ErrNotDemo on a database Create did not make, or the first
// database error.
func Live(ctx context.Context, dsn string, opts LiveOptions) error {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("demo: connect: %w", err)
	}
	defer conn.Close(context.Background())
	var isDemo bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, HelperSchema).Scan(&isDemo); err != nil {
		return fmt.Errorf("demo: inspect: %w", err)
	}
	if !isDemo {
		return ErrNotDemo
	}
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed>>1))
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		what, err := change(ctx, conn, rng, wall(opts.Now()))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if what != "" {
			logf("demo: %s", what)
		}
	}
}

// Step makes one random change now and says what it did ("" when the chosen
// action found nothing to act on). Tests and the CLI use it to drive the
// clinic without a ticker.
func Step(ctx context.Context, dsn string, seed uint64, now time.Time) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("demo: connect: %w", err)
	}
	defer conn.Close(context.Background())
	return change(ctx, conn, rand.New(rand.NewPCG(seed, seed>>1)), wall(now))
}

func change(ctx context.Context, conn *pgx.Conn, rng *rand.Rand, now time.Time) (string, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("demo: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	var staff []int32
	if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg("ID_Persons" ORDER BY "ID_Persons"), '{}') FROM dbo."Staffs" WHERE NOT "Archive"`).Scan(&staff); err != nil {
		return "", fmt.Errorf("demo: staff: %w", err)
	}
	if len(staff) < 2 {
		return "", nil
	}
	// The highest staff id is the administrator (as Create makes it).
	admin := int(staff[len(staff)-1])
	doctors := staff[:len(staff)-1]
	var what string
	switch r := rng.IntN(100); {
	case r < 25:
		what, err = book(ctx, tx, rng, now, rng.IntN(5) == 0, int(doctors[rng.IntN(len(doctors))]), admin)
	case r < 40:
		what, err = advance(ctx, tx, now, `"PatientAppeared" IS NULL AND "PlanStart" <= $1::timestamp + interval '1 day'`,
			`"PatientAppeared" = $1`, "arrived")
	case r < 55:
		what, err = advance(ctx, tx, now, `"PatientAppeared" IS NOT NULL AND "ReceptionStarted" IS NULL`,
			`"ReceptionStarted" = $1`, "started")
	case r < 72:
		what, err = advance(ctx, tx, now, `"ReceptionStarted" IS NOT NULL AND "ReceptionEnded" IS NULL`,
			`"ReceptionEnded" = $1, "CheckIssued" = $1::timestamp + interval '2 minutes'`, "completed")
	case r < 82:
		what, err = move(ctx, tx, rng, now, admin)
	case r < 90:
		what, err = advance(ctx, tx, now, `"PatientAppeared" IS NULL AND "PlanStart" > $1`,
			fmt.Sprintf(`"ReceptionCanceled" = $1, "ID_ReceptionCancelReasons" = 1, "ID_StaffsReceptionCanceled" = %d`, admin), "cancelled")
	default:
		what, err = editPhone(ctx, tx, rng, now)
	}
	if err != nil {
		return "", err
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("demo: commit: %w", err)
	}
	return what, nil
}

// open is the condition of a reception nothing final happened to.
const open = `"ReceptionCanceled" IS NULL AND "ID_ReceptionCancelReasons" IS NULL AND "ReceptionEnded" IS NULL`

// advance stamps the earliest open reception matching cond.
func advance(ctx context.Context, tx pgx.Tx, now time.Time, cond, set, what string) (string, error) {
	var id int
	err := tx.QueryRow(ctx, `SELECT "ID" FROM dbo."Receptions" WHERE `+open+` AND `+cond+
		` AND "PlanStart" >= $1::timestamp - interval '3 days' ORDER BY "PlanStart", "ID" LIMIT 1 FOR UPDATE`, now).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("demo: find reception to mark %s: %w", what, err)
	}
	_, err = tx.Exec(ctx, `UPDATE dbo."Receptions" SET `+set+`, "DateTimeChanged" = $1, "RowVersion" = `+RowVersionExpr+
		` WHERE "ID" = $2`, now, id)
	if err != nil {
		return "", fmt.Errorf("demo: mark reception %d %s: %w", id, what, err)
	}
	return fmt.Sprintf("reception %d %s", id, what), nil
}

func randomPatient(ctx context.Context, tx pgx.Tx, rng *rand.Rand) (int, error) {
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM dbo."Patients"`).Scan(&n); err != nil {
		return 0, fmt.Errorf("demo: count patients: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	var id int
	err := tx.QueryRow(ctx, `SELECT "ID_Persons" FROM dbo."Patients" ORDER BY "ID_Persons" OFFSET $1 LIMIT 1`, rng.IntN(n)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("demo: pick patient: %w", err)
	}
	return id, nil
}

func book(ctx context.Context, tx pgx.Tx, rng *rand.Rand, now time.Time, newPatient bool, doctor, admin int) (string, error) {
	var patientID int
	var err error
	if newPatient {
		if err := tx.QueryRow(ctx, `SELECT nextval('svyazka_demo.persons')`).Scan(&patientID); err != nil {
			return "", fmt.Errorf("demo: person id: %w", err)
		}
		male := rng.IntN(2) == 0
		name := pick(rng, femaleNames)
		if male {
			name = pick(rng, maleNames)
		}
		mobile, phone := phones(rng)
		if _, err := tx.Exec(ctx, `INSERT INTO dbo."Persons" ("ID","Surname","Name","Patronymic","Birthday","MobilePhone","Phone") VALUES ($1,$2,$3,$4,$5,$6,$7)`,
			patientID, surnameFor(pick(rng, surnames), male), name, patronymic(pick(rng, maleNames), male),
			birthdayText(rng, now.AddDate(-18-rng.IntN(50), 0, -rng.IntN(365))), mobile, phone); err != nil {
			return "", fmt.Errorf("demo: new person: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO dbo."Patients" ("ID_Persons","CardNumber","PatientNumber","Status","DateTimeChanged") VALUES ($1,$2,$2,1,$3)`,
			patientID, fmt.Sprint(patientID+1000), now); err != nil {
			return "", fmt.Errorf("demo: new patient: %w", err)
		}
	} else if patientID, err = randomPatient(ctx, tx, rng); err != nil || patientID == 0 {
		return "", err
	}
	day := now.AddDate(0, 0, rng.IntN(21))
	start := time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(44)) * 15 * time.Minute)
	id, err := insertReception(ctx, tx, patientID, start, start.Add(time.Duration(15*(1+rng.IntN(4)))*time.Minute), doctor, 1+rng.IntN(4), nil, now, admin)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("reception %d booked for patient %d at %s", id, patientID, start.Format("02.01 15:04")), nil
}

func insertReception(ctx context.Context, tx pgx.Tx, patientID int, start, end time.Time, doctor, chair int, from *int, now time.Time, admin int) (int, error) {
	var id int
	err := tx.QueryRow(ctx, `INSERT INTO dbo."Receptions" ("ID","ID_Patients","ID_StaffsReceptionAdded","ReceptionAdded","Comment",
		"PlanStart","PlanEnd","ID_Staffs","ID_Armchairs","ID_ReceptionsTransferFrom","RowVersion","ID_StaffsAdded","DateTimeAdded","DateTimeChanged","IsNotified","NeedHandReminder")
		VALUES (nextval('svyazka_demo.receptions'), $1, $8, $2::timestamp + interval '500 milliseconds', '', $3, $4, $5, $6, $7, `+RowVersionExpr+`, $8, $2, $2, false, false)
		RETURNING "ID"`, patientID, now, start, end, doctor, chair, from, admin).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("demo: insert reception: %w", err)
	}
	return id, nil
}

func move(ctx context.Context, tx pgx.Tx, rng *rand.Rand, now time.Time, admin int) (string, error) {
	var (
		id, patientID, doctor, chair int
		start, end                   time.Time
	)
	err := tx.QueryRow(ctx, `SELECT "ID","ID_Patients","ID_Staffs","ID_Armchairs","PlanStart","PlanEnd" FROM dbo."Receptions"
		WHERE `+open+` AND "PatientAppeared" IS NULL AND "PlanStart" > $1 ORDER BY "PlanStart" LIMIT 1 FOR UPDATE`, now).
		Scan(&id, &patientID, &doctor, &chair, &start, &end)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("demo: find reception to move: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE dbo."Receptions" SET "ReceptionCanceled" = $1, "ID_ReceptionCancelReasons" = $2,
		"CancelReasonComment" = 'Перенос по просьбе пациента', "ID_StaffsReceptionCanceled" = $4,
		"DateTimeChanged" = $1, "RowVersion" = `+RowVersionExpr+` WHERE "ID" = $3`, now, ReasonMoved, id, admin); err != nil {
		return "", fmt.Errorf("demo: cancel moved reception %d: %w", id, err)
	}
	shift := time.Duration(1+rng.IntN(7)) * 24 * time.Hour
	newID, err := insertReception(ctx, tx, patientID, start.Add(shift), end.Add(shift), doctor, chair, &id, now, admin)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("reception %d moved to %d", id, newID), nil
}

func editPhone(ctx context.Context, tx pgx.Tx, rng *rand.Rand, now time.Time) (string, error) {
	id, err := randomPatient(ctx, tx, rng)
	if err != nil || id == 0 {
		return "", err
	}
	mobile, _ := phones(rng)
	if _, err := tx.Exec(ctx, `UPDATE dbo."Persons" SET "MobilePhone" = $1 WHERE "ID" = $2`, mobile, id); err != nil {
		return "", fmt.Errorf("demo: edit phone: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE dbo."Patients" SET "DateTimeChanged" = $1 WHERE "ID_Persons" = $2`, now, id); err != nil {
		return "", fmt.Errorf("demo: touch patient: %w", err)
	}
	return fmt.Sprintf("patient %d phone changed", id), nil
}
