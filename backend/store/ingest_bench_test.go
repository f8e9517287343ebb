package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/svyazka/svyazka/backend/conntoken"
	"github.com/svyazka/svyazka/backend/ingest"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/connector/protocol"
)

// identBatch is a full batch as an IDENT connector sends it during an
// initial load: a third patients, two thirds receptions (the demo clinic's
// ratio), every field a real row has filled, source ids from first on.
// revision changes the content (a comment and a stamp) without changing keys.
func identBatch(first, revision int) protocol.Batch {
	b := protocol.Batch{BatchID: uuid.NewString(), Records: make([]protocol.Record, 0, protocol.MaxRecordsPerBatch)}
	day := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range protocol.MaxRecordsPerBatch {
		id := first + i
		var data any
		kind := protocol.KindReception
		if i%3 == 0 {
			kind = protocol.KindPatient
			data = protocol.IdentPatient{Surname: "Константинопольская", Name: "Мария", Patronymic: "Александровна",
				CardNumber: strconv.Itoa(10000 + id), MobilePhone: "+7 (912) 345-67-89", Phone: "8 343 123 45 67 (раб.)",
				BirthDate: "1987-04-12", BirthdayRaw: "12.04.1987", Sex: "female", ParentName: "",
				FirstConsultation: "2023-05-17T10:30:00", DateTimeChanged: fmt.Sprintf("2025-03-01T12:%02d:00", revision%60),
				FirstVisitReceptionID: strconv.Itoa(id + 1), FirstVisitPlanStart: "2023-05-17T10:30:00", CompletedReceptions: 7}
		} else {
			start := day.Add(time.Duration(id%500) * 15 * time.Minute)
			amount := int64(350000 + id)
			data = protocol.IdentReception{PatientID: strconv.Itoa(id - i%3), StaffID: "12", ChairID: "3", BranchID: "1",
				PlanStart: start.Format(protocol.LocalTimeLayout), PlanEnd: start.Add(45 * time.Minute).Format(protocol.LocalTimeLayout),
				PatientAppeared: start.Add(-5 * time.Minute).Format(protocol.LocalTimeLayout), ReceptionStarted: start.Format(protocol.LocalTimeLayout),
				ReceptionEnded: start.Add(40 * time.Minute).Format(protocol.LocalTimeLayout), CheckIssued: start.Add(42 * time.Minute).Format(protocol.LocalTimeLayout),
				Comment: fmt.Sprintf("Лечение кариеса 36, повторный приём через 2 недели (ред. %d)", revision), AmountKopecks: &amount,
				DateTimeAdded: day.AddDate(0, 0, -14).Format(protocol.LocalTimeLayout), DateTimeChanged: start.Add(42 * time.Minute).Format(protocol.LocalTimeLayout)}
		}
		raw, err := json.Marshal(data)
		if err != nil {
			panic(err)
		}
		b.Records = append(b.Records, protocol.Record{Kind: kind, SourceID: strconv.Itoa(id), Version: int64(revision)*1_000_000 + int64(id), Data: raw})
	}
	return b
}

// ingestInput checks a batch as the connector API does and converts it.
func ingestInput(b testing.TB, databaseID int64, batch protocol.Batch) store.IngestBatch {
	checked, err := ingest.Check(batch)
	if err != nil {
		b.Fatal(err)
	}
	if len(checked.Errors) > 0 {
		b.Fatalf("the benchmark's batch has bad records: %+v", checked.Errors[0])
	}
	in := store.IngestBatch{DatabaseID: databaseID, BatchID: checked.BatchID, Total: checked.Total, Now: time.Now().UTC(),
		Records: make([]store.IngestRecord, len(checked.Records))}
	for i, r := range checked.Records {
		in.Records[i] = store.IngestRecord{Kind: string(r.Kind), SourceID: r.SourceID, Version: r.Version, Deleted: r.Deleted, Data: r.Data, Hash: r.Hash}
	}
	return in
}

func benchDatabase(b *testing.B, db *store.DB, amoID int64) int64 {
	b.Helper()
	ctx := context.Background()
	acc, _, err := db.InstallAccount(ctx, store.InstallInput{AmoAccountID: amoID, Subdomain: fmt.Sprintf("bench%d", amoID),
		BaseDomain: "amocrm.ru", TrialDays: 14, Now: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	_, hash := conntoken.New()
	d, err := db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: acc.ID, TokenHash: hash, Now: time.Now(), MaxDatabases: 5})
	if err != nil {
		b.Fatal(err)
	}
	return d.ID
}

// BenchmarkIngest stores full 500-record IDENT batches with Ingest and
// reports records/s. The batches are checked and canonicalised (ingest.Check)
// outside the timer; the HTTP benchmark in backend/httpapi includes that.
//
//	InitialLoad  every batch carries new keys (the first import of a clinic)
//	Changed      the same keys again with new content (a re-scan after edits)
//	Unchanged    the same keys and content with higher versions (a re-scan)
//	Duplicate    the same batch id again (a resend after a lost answer)
//	Parallel4    InitialLoad from four clinics at once
func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	db := storetest.New(b)
	report := func(b *testing.B, records int) {
		b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	}

	b.Run("InitialLoad", func(b *testing.B) {
		id := benchDatabase(b, db, 1)
		n, first := 0, 1
		for b.Loop() {
			b.StopTimer()
			in := ingestInput(b, id, identBatch(first, 1))
			first += protocol.MaxRecordsPerBatch
			b.StartTimer()
			if _, err := db.Ingest(ctx, in); err != nil {
				b.Fatal(err)
			}
			n += len(in.Records)
		}
		report(b, n)
	})

	for _, tc := range []struct {
		name    string
		changed bool
	}{{"Changed", true}, {"Unchanged", false}} {
		b.Run(tc.name, func(b *testing.B) {
			id := benchDatabase(b, db, 2)
			// 20 000 stored records, as a mid-size clinic has; batches
			// rotate over them.
			const stored = 40
			for k := range stored {
				if _, err := db.Ingest(ctx, ingestInput(b, id, identBatch(1+k*protocol.MaxRecordsPerBatch, 1))); err != nil {
					b.Fatal(err)
				}
			}
			n, rev := 0, 1
			for b.Loop() {
				b.StopTimer()
				rev++
				content := 1
				if tc.changed {
					content = rev
				}
				batch := identBatch(1+(rev%stored)*protocol.MaxRecordsPerBatch, content)
				for i := range batch.Records {
					batch.Records[i].Version = int64(rev)*1_000_000 + int64(i)
				}
				in := ingestInput(b, id, batch)
				b.StartTimer()
				res, err := db.Ingest(ctx, in)
				if err != nil {
					b.Fatal(err)
				}
				if tc.changed != (res.Changed > 0) {
					b.Fatalf("changed %d records", res.Changed)
				}
				n += len(in.Records)
			}
			report(b, n)
		})
	}

	b.Run("Duplicate", func(b *testing.B) {
		id := benchDatabase(b, db, 3)
		in := ingestInput(b, id, identBatch(1, 1))
		if _, err := db.Ingest(ctx, in); err != nil {
			b.Fatal(err)
		}
		n := 0
		for b.Loop() {
			res, err := db.Ingest(ctx, in)
			if err != nil || !res.Duplicate {
				b.Fatal(err, res.Duplicate)
			}
			n += len(in.Records)
		}
		report(b, n)
	})

	b.Run("Parallel4", func(b *testing.B) {
		ids := make(chan int64, 4)
		for k := range 4 {
			ids <- benchDatabase(b, db, int64(10+k))
		}
		const perRun = 20
		inputs := map[int64][]store.IngestBatch{}
		b.StopTimer()
		for len(ids) > 0 {
			id := <-ids
			for k := range perRun {
				inputs[id] = append(inputs[id], ingestInput(b, id, identBatch(1+k*protocol.MaxRecordsPerBatch, 1)))
			}
		}
		b.StartTimer()
		n := 0
		for b.Loop() {
			b.StopTimer()
			// Fresh keys every round: rewrite the source ids and batch ids.
			for _, list := range inputs {
				for i := range list {
					list[i].BatchID = uuid.NewString()
					for j := range list[i].Records {
						r := &list[i].Records[j]
						v, _ := strconv.Atoi(r.SourceID)
						r.SourceID = strconv.Itoa(v + perRun*protocol.MaxRecordsPerBatch)
					}
				}
			}
			b.StartTimer()
			errs := make(chan error, len(inputs))
			for _, list := range inputs {
				go func() {
					for _, in := range list {
						if _, err := db.Ingest(ctx, in); err != nil {
							errs <- err
							return
						}
					}
					errs <- nil
				}()
			}
			for range inputs {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			n += len(inputs) * perRun * protocol.MaxRecordsPerBatch
		}
		report(b, n)
	})
}
