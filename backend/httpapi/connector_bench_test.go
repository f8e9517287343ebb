package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/svyazka/svyazka/backend/conntoken"
	"github.com/svyazka/svyazka/backend/httpapi"
	"github.com/svyazka/svyazka/backend/metrics"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/connector/protocol"
)

// benchIdentBatch is a full 500-record IDENT batch of an initial load (a
// third patients, two thirds receptions, every field filled), keys from
// first on, as the JSON the connector POSTs.
func benchIdentBatch(b *testing.B, first int) []byte {
	b.Helper()
	batch := protocol.Batch{BatchID: uuid.NewString(), Records: make([]protocol.Record, 0, protocol.MaxRecordsPerBatch)}
	day := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range protocol.MaxRecordsPerBatch {
		id := first + i
		var data any
		kind := protocol.KindReception
		if i%3 == 0 {
			kind = protocol.KindPatient
			data = protocol.IdentPatient{Surname: "Константинопольская", Name: "Мария", Patronymic: "Александровна",
				CardNumber: strconv.Itoa(10000 + id), MobilePhone: "+7 (912) 345-67-89", Phone: "8 343 123 45 67 (раб.)",
				BirthDate: "1987-04-12", BirthdayRaw: "12.04.1987", Sex: "female",
				FirstConsultation: "2023-05-17T10:30:00", DateTimeChanged: "2025-03-01T12:00:00",
				FirstVisitReceptionID: strconv.Itoa(id + 1), FirstVisitPlanStart: "2023-05-17T10:30:00", CompletedReceptions: 7}
		} else {
			start := day.Add(time.Duration(id%500) * 15 * time.Minute)
			amount := int64(350000 + id)
			data = protocol.IdentReception{PatientID: strconv.Itoa(id - i%3), StaffID: "12", ChairID: "3", BranchID: "1",
				PlanStart: start.Format(protocol.LocalTimeLayout), PlanEnd: start.Add(45 * time.Minute).Format(protocol.LocalTimeLayout),
				PatientAppeared: start.Add(-5 * time.Minute).Format(protocol.LocalTimeLayout), ReceptionStarted: start.Format(protocol.LocalTimeLayout),
				ReceptionEnded: start.Add(40 * time.Minute).Format(protocol.LocalTimeLayout), CheckIssued: start.Add(42 * time.Minute).Format(protocol.LocalTimeLayout),
				Comment: "Лечение кариеса 36, повторный приём через 2 недели", AmountKopecks: &amount,
				DateTimeAdded: day.AddDate(0, 0, -14).Format(protocol.LocalTimeLayout), DateTimeChanged: start.Add(42 * time.Minute).Format(protocol.LocalTimeLayout)}
		}
		raw, err := json.Marshal(data)
		if err != nil {
			b.Fatal(err)
		}
		batch.Records = append(batch.Records, protocol.Record{Kind: kind, SourceID: strconv.Itoa(id), Version: int64(id), Data: raw})
	}
	body, err := json.Marshal(batch)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkConnectorBatches posts full 500-record IDENT batches with new
// keys to POST /api/connector/v1/batches over loopback HTTP (authentication,
// strict JSON decoding, ingest.Check, Ingest, the answer), one request at a
// time as one connector sends them, and reports records/s and the body size.
func BenchmarkConnectorBatches(b *testing.B) {
	ctx := context.Background()
	db := storetest.New(b)
	acc, _, err := db.InstallAccount(ctx, store.InstallInput{AmoAccountID: 1, Subdomain: "bench", BaseDomain: "amocrm.ru", TrialDays: 14, Now: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	token, hash := conntoken.New()
	if _, err := db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: acc.ID, TokenHash: hash, Now: time.Now(), MaxDatabases: 5}); err != nil {
		b.Fatal(err)
	}
	srv, err := httpapi.New(httpapi.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New(),
		Checks: map[string]httpapi.Pinger{}}, httpapi.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.RegisterConnector(httpapi.ConnectorConfig{Store: db, Limiter: allowAll{}, Now: time.Now, HeartbeatInterval: time.Minute}); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	b.Cleanup(ts.Close)

	b.ReportAllocs()
	n, first, size := 0, 1, 0
	for b.Loop() {
		b.StopTimer()
		body := benchIdentBatch(b, first)
		size = len(body)
		first += protocol.MaxRecordsPerBatch
		req, err := http.NewRequest(http.MethodPost, ts.URL+protocol.PathBatches, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		b.StartTimer()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var res protocol.BatchResult
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || res.Accepted != protocol.MaxRecordsPerBatch {
			b.Fatal(fmt.Errorf("status %d, accepted %d: %v", resp.StatusCode, res.Accepted, err))
		}
		n += res.Accepted
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(size), "bytes/batch")
}
