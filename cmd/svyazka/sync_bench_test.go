package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/connector/protocol"
)

// Connector's default poll: a change waits up to this long before it is read.
const connectorPoll = 5 * time.Second

// benchClinic is a synthetic clinic of exactly the requested size: every
// appointment is its own chain (no moves), so leads = appointments and the
// minimum number of write requests is (patients + appointments) / 50.
type benchClinic struct {
	records []protocol.Record
	// future are planned receptions (id → record) a change can mark arrived.
	future  map[string]protocol.IdentReception
	version int64
}

func newBenchClinic(patients, appointments int, now time.Time) *benchClinic {
	rng := rand.New(rand.NewPCG(1, 2))
	c := &benchClinic{future: map[string]protocol.IdentReception{}}
	add := func(kind protocol.Kind, id string, v any) {
		raw, _ := json.Marshal(v)
		c.version++
		c.records = append(c.records, protocol.Record{Kind: kind, SourceID: id, Version: c.version, Data: raw})
	}
	for i := 1; i <= 5; i++ {
		add(protocol.KindDoctor, strconv.Itoa(i), protocol.IdentDoctor{Surname: "Врачев" + strconv.Itoa(i), Name: "Иван", Patronymic: "Петрович"})
	}
	add(protocol.KindBranch, "1", protocol.IdentBranch{Name: "Центр"})
	local := func(t time.Time) string { return t.Format(protocol.LocalTimeLayout) }
	rid := 0
	var receptions []protocol.Record
	for p := 1; p <= patients; p++ {
		n := appointments / patients
		if p <= appointments%patients {
			n++
		}
		pid := strconv.Itoa(p)
		patient := protocol.IdentPatient{Surname: "Пациентов", Name: "Пациент" + pid, Patronymic: "Тестович",
			MobilePhone: fmt.Sprintf("+7 9%02d %03d-%02d-%02d", p/10000000%100, p/10000%1000, p/100%100, p%100)}
		starts := make([]time.Time, n)
		for j := range starts {
			// A 15-minute slot within the last 300 days or the next 30.
			day := now.AddDate(0, 0, -rng.IntN(300)+rng.IntN(30))
			starts[j] = time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(44)) * 15 * time.Minute)
		}
		slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
		for _, start := range starts {
			rid++
			id := strconv.Itoa(rid)
			end := start.Add(30 * time.Minute)
			r := protocol.IdentReception{PatientID: pid, StaffID: strconv.Itoa(1 + rng.IntN(5)), BranchID: "1",
				PlanStart: local(start), PlanEnd: local(end), Comment: "Осмотр"}
			switch roll := rng.IntN(100); {
			case start.After(now):
				c.future[id] = r
			case roll < 70:
				r.PatientAppeared, r.ReceptionStarted, r.ReceptionEnded, r.CheckIssued = local(start), local(start), local(end), local(end)
				amount := int64(100000 + rng.IntN(2000000))
				r.AmountKopecks = &amount
				if patient.FirstVisitReceptionID == "" {
					patient.FirstVisitReceptionID, patient.FirstVisitPlanStart = id, r.PlanStart
				}
				patient.CompletedReceptions++
			case roll < 80:
				r.ReceptionCanceled, r.CancelReasonID = local(end), mirror.DefaultNoShowReasonID
			case roll < 90:
				r.ReceptionCanceled, r.CancelReasonID = local(start.Add(-24*time.Hour)), "1"
			default:
				r.PatientAppeared = local(start)
			}
			raw, _ := json.Marshal(r)
			receptions = append(receptions, protocol.Record{Kind: protocol.KindReception, SourceID: id, Data: raw})
		}
		add(protocol.KindPatient, pid, patient)
	}
	for i := range receptions {
		c.version++
		receptions[i].Version = c.version
	}
	c.records = append(c.records, receptions...)
	return c
}

// arrive returns the record of a planned reception marked arrived.
func (c *benchClinic) arrive(id string, at time.Time) protocol.Record {
	r := c.future[id]
	delete(c.future, id)
	r.PatientAppeared = at.Format(protocol.LocalTimeLayout)
	raw, _ := json.Marshal(r)
	c.version++
	return protocol.Record{Kind: protocol.KindReception, SourceID: id, Version: c.version, Data: raw}
}

// stageWatch times changes until the sandbox accepted a write that puts
// their lead in the wanted stage.
type stageWatch struct {
	keyField int64
	mu       sync.Mutex
	want     map[string]int64     // reception id → status id
	changed  map[string]time.Time // reception id → when the clinic changed it
	took     map[string]time.Duration
	// ingested is when the change was stored (after the poll's share);
	// sinceIngest the part of took after it, the sync's own.
	ingested    map[string]time.Time
	sinceIngest map[string]time.Duration
}

func (w *stageWatch) stored(receptionID string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ingested == nil {
		w.ingested, w.sinceIngest = map[string]time.Time{}, map[string]time.Duration{}
	}
	w.ingested[receptionID] = at
}

// syncPart returns the sorted parts of ids' latencies after their ingest.
func (w *stageWatch) syncPart(ids []string) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sortedOf(w.sinceIngest, ids)
}

func (w *stageWatch) expect(receptionID string, status int64, changedAt time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want[receptionID], w.changed[receptionID] = status, changedAt
}

func (w *stageWatch) observe(body []byte, at time.Time) {
	var leads []amocrm.Lead
	if json.Unmarshal(body, &leads) != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range leads {
		for _, fv := range l.CustomFieldsValues {
			if fv.FieldID != w.keyField || len(fv.Values) == 0 {
				continue
			}
			id := strings.TrimSpace(fmt.Sprint(fv.Values[0].Value))
			if st, ok := w.want[id]; ok && st == l.StatusID {
				w.took[id] = at.Sub(w.changed[id])
				if in, ok := w.ingested[id]; ok {
					w.sinceIngest[id] = at.Sub(in)
				}
				delete(w.want, id)
			}
		}
	}
}

func (w *stageWatch) waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.want)
}

func (w *stageWatch) durations(ids []string) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sortedOf(w.took, ids)
}

// sortedOf returns the durations of ids found in m, sorted.
func sortedOf(m map[string]time.Duration, ids []string) []time.Duration {
	var out []time.Duration
	for _, id := range ids {
		if d, ok := m[id]; ok {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

func p95(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, (len(ds)*95+99)/100-1)]
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(b, err, name)
	return n
}

// BenchmarkSync imports SYNC_BENCH_PATIENTS patients (20,000) and
// SYNC_BENCH_APPOINTMENTS appointments (60,000) through a real `svyazka
// worker` into the sandbox at amoCRM's 7 rps, with clinic changes during
// and after the import, and reports: wall time of the import, requests and
// their ratio to the minimum (entities ÷ 50), the p95 from a clinic change
// (plus a random part of the connector's 5 s poll) to the sandbox accepting
// the lead's new stage, during and after the import, and the worker's peak
// RSS. It ends by checking the sandbox against backend/mirror's rules, as
// TestSyncChaos does. Run it with `make bench-sync`.
func BenchmarkSync(b *testing.B) {
	if os.Getenv("SYNC_BENCH") == "" {
		b.Skip("minutes long at 7 rps: run it with `make bench-sync` (SYNC_BENCH=1)")
	}
	patients := envInt(b, "SYNC_BENCH_PATIENTS", 20000)
	appointments := envInt(b, "SYNC_BENCH_APPOINTMENTS", 60000)
	for range b.N {
		b.StopTimer()
		now := wallNow()
		clinic := newBenchClinic(patients, appointments, now)
		s := newSyncStand(b, "")
		watch := &stageWatch{keyField: s.mv.Mapping.Lead[setup.DatumReceptionID].FieldID, want: map[string]int64{},
			changed: map[string]time.Time{}, took: map[string]time.Duration{}}
		observe := watch.observe
		s.chaos.observe.Store(&observe)
		ingestStart := time.Now()
		s.ingest(clinic.records)
		ingestTook := time.Since(ingestStart)
		// The connector's first load is over and its heartbeat says so:
		// that fixes the import's bound, so later changes take the
		// real-time lane.
		require.NoError(b, s.db.RecordHeartbeat(s.ctx, store.HeartbeatInput{DatabaseID: s.dbID, InstanceID: "bench", ConnectorVersion: "bench",
			DatabaseUp: true, InitialLoadDone: true, Now: time.Now()}))
		base := s.apiRequests()
		s.chaos.kindCounts()
		// The stage an arrival shows: the pipeline of a planned reception
		// does not change when it is marked arrived.
		ex := s.expect(time.Now(), time.Now())
		future := make([]string, 0, len(clinic.future))
		for id := range clinic.future {
			future = append(future, id)
		}
		slices.SortFunc(future, func(a, b string) int { n, _ := strconv.Atoi(a); m, _ := strconv.Atoi(b); return n - m })
		rand.New(rand.NewPCG(3, 4)).Shuffle(len(future), func(i, j int) { future[i], future[j] = future[j], future[i] })
		change := func() string {
			id := future[0]
			future = future[1:]
			at := time.Now()
			pm := s.mv.Mapping.Pipelines[ex.leads[id].pipeline]
			watch.expect(id, pm.Stages[setup.StateArrived], at)
			rec := clinic.arrive(id, wallNow())
			go func() {
				// The connector reads the change at its next poll.
				time.Sleep(time.Duration(rand.Int64N(int64(connectorPoll))))
				s.ingest([]protocol.Record{rec})
				watch.stored(id, time.Now())
			}()
			return id
		}

		b.StartTimer()
		start := time.Now()
		s.start()
		worker := s.startWorker()
		var during []string
		tick := time.NewTicker(5 * time.Second)
		for s.pending() > 0 {
			select {
			case <-tick.C:
				if len(future) > 0 {
					during = append(during, change())
				}
			case <-time.After(200 * time.Millisecond):
			}
			require.True(b, worker.running(), "the worker exited:\n%s", tail(worker.out.String()))
		}
		tick.Stop()
		wall := time.Since(start)
		b.StopTimer()
		importKinds := s.chaos.kindCounts()
		// Changes made after the import: one every 1.5 s.
		var after []string
		for range min(20, len(future)) {
			after = append(after, change())
			time.Sleep(1500 * time.Millisecond)
		}
		require.Eventually(b, func() bool { return watch.waiting() == 0 }, 2*time.Minute+wall, 100*time.Millisecond,
			"%d changes never reached the sandbox", watch.waiting())
		require.Eventually(b, func() bool { return s.pending() == 0 }, time.Minute, 100*time.Millisecond)
		afterKinds := s.chaos.kindCounts()
		rss, err := peakRSS(worker.cmd.Process.Pid)
		require.NoError(b, err)

		byEndpoint := map[string]int{}
		total := 0
		for k, v := range s.apiRequests() {
			if d := v - base[k]; d > 0 {
				byEndpoint[k] = d
				total += d
			}
		}
		summary := s.verify(s.expect(time.Now(), start))
		minimum := float64(patients+appointments) / 50
		duringDs, afterDs := watch.durations(during), watch.durations(after)
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(float64(total), "requests")
		b.ReportMetric(float64(total)/minimum, "x-min-requests")
		b.ReportMetric(p95(duringDs).Seconds(), "p95-change-during-import-s")
		b.ReportMetric(p95(afterDs).Seconds(), "p95-change-after-import-s")
		b.ReportMetric(float64(rss)/(1<<20), "worker-peak-rss-MB")
		importTotal := 0
		for _, n := range importKinds {
			importTotal += n
		}
		b.ReportMetric(float64(importTotal)/minimum, "x-min-import-requests")
		b.Logf("during the import (with %d changes): %d requests = %.2f× the minimum: %s", len(during), importTotal,
			float64(importTotal)/minimum, sortedCounts(importKinds))
		b.Logf("after the import (%d changes): %s", len(after), sortedCounts(afterKinds))
		for _, part := range []struct {
			name string
			ids  []string
		}{{"during", during}, {"after", after}} {
			ds, sp := watch.durations(part.ids), watch.syncPart(part.ids)
			if len(ds) > 0 && len(sp) > 0 {
				b.Logf("changes %s the import: change → stage p50 %s p95 %s max %s; of which ingest → stage p50 %s p95 %s max %s", part.name,
					ds[len(ds)/2].Round(10*time.Millisecond), p95(ds).Round(10*time.Millisecond), ds[len(ds)-1].Round(10*time.Millisecond),
					sp[len(sp)/2].Round(10*time.Millisecond), p95(sp).Round(10*time.Millisecond), sp[len(sp)-1].Round(10*time.Millisecond))
			}
		}
		b.Logf("%d patients, %d appointments (ingested in %s): import %s; %d requests = %.2f× the minimum %.0f (%s); "+
			"change → stage p95 %s during the import (%d changes), %s after it (%d changes, max %s); worker peak RSS %.0f MB; %s",
			patients, appointments, ingestTook.Round(time.Millisecond), wall.Round(time.Second), total, float64(total)/minimum, minimum,
			sortedCounts(byEndpoint), p95(duringDs).Round(10*time.Millisecond), len(duringDs), p95(afterDs).Round(10*time.Millisecond),
			len(afterDs), slices.Max(append(afterDs, 0)).Round(10*time.Millisecond), float64(rss)/(1<<20), summary)
	}
}
