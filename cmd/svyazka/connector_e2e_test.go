package main

// End-to-end tests of the data path with real processes: the demo IDENT
// stand-in in PostgreSQL, the real svyazka-connector binary and the real
// `svyazka api`, killed and restarted the way a clinic's server and our
// backend fail in practice. Each test has its own clinic database, backend
// database, Redis DB, state directory and ports, so they run in parallel.
//
// What "arrived" means everywhere below: the set of (kind, source_id) of
// patients and of receptions in the connector's window, read straight from
// the dbo tables, equals the set in source_records, and each stored record
// matches its source row now (a reception's version is its RowVersion; the
// fingerprint compares the facts the sync uses).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/conntoken"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/connector/agent"
	"github.com/svyazka/svyazka/connector/demo"
	"github.com/svyazka/svyazka/connector/protocol"
)

// settleTimeout bounds every wait for the data to arrive; generous because
// the tests of this package share two cores (and the race detector slows
// both binaries down several times).
const settleTimeout = 90 * time.Second

var (
	binariesOnce sync.Once
	connectorBin string
	apiBin       string
	binariesErr  error
)

// e2eBinaries builds svyazka-connector once per test binary, in a
// subdirectory of the one TestMain built svyazka in (so TestMain's cleanup
// removes it). Not beside svyazka itself: `svyazka run` starts a demo
// connector when it finds svyazka-connector next to its executable, which
// would change what the other tests of this package see. Under -race both
// are built with the race detector, so a race in a child process fails the
// test through its stderr.
func e2eBinaries(t *testing.T) (connector, api string) {
	t.Helper()
	binariesOnce.Do(func() {
		dir := filepath.Join(filepath.Dir(binary), "e2e")
		if binariesErr = os.MkdirAll(dir, 0o755); binariesErr != nil {
			return
		}
		connectorBin, apiBin = filepath.Join(dir, "svyazka-connector"), binary
		args := []string{"build"}
		if raceBuild {
			args = append(args, "-race")
		}
		build := func(out, pkg string) error {
			if b, err := exec.Command("go", append(args, "-o", out, pkg)...).CombinedOutput(); err != nil {
				return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
			}
			return nil
		}
		if binariesErr = build(connectorBin, "../svyazka-connector"); binariesErr != nil {
			return
		}
		if raceBuild {
			apiBin = filepath.Join(dir, "svyazka")
			binariesErr = build(apiBin, ".")
		}
	})
	require.NoError(t, binariesErr)
	return connectorBin, apiBin
}

// proc is a child process whose output the test keeps.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start(), name)
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL: no deferred function, no flush, no graceful shutdown.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGINT and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited with %d after SIGINT:\n%s", p.name, code, tail(p.out.String()))
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 30s after SIGINT:\n%s", p.name, tail(p.out.String()))
	}
}

func tail(s string) string {
	if len(s) > 6000 {
		return "…" + s[len(s)-6000:]
	}
	return s
}

// stand is one clinic with its connector and one backend.
type stand struct {
	t          *testing.T
	ctx        context.Context
	db         *store.DB
	backendDSN string
	clinicDSN  string
	apiAddr    string
	apiEnv     map[string]string
	token      string
	account    store.Account
	database   store.ClinicDatabase
	stateDir   string
	since      time.Time

	mu    sync.Mutex
	api   *proc
	conn  *proc
	procs []*proc
}

// newStand makes a demo clinic of the given size, a migrated backend
// database with an account, a database entry and its token. Nothing runs yet.
func newStand(t *testing.T, patients int) *stand {
	t.Helper()
	ctx := context.Background()
	s := &stand{t: t, ctx: ctx, backendDSN: storetest.NewURL(t), clinicDSN: storetest.NewURL(t), stateDir: t.TempDir()}
	var err error
	s.db, err = store.Open(ctx, s.backendDSN, store.Options{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.db.Close() })
	m, err := store.NewMigrator(s.db.SQL())
	require.NoError(t, err)
	_, err = m.Up(ctx)
	require.NoError(t, err)

	now := time.Now()
	s.account, _, err = s.db.InstallAccount(ctx, store.InstallInput{AmoAccountID: 31337, Subdomain: "ulybka",
		BaseDomain: "amocrm.ru", TrialDays: 14, Now: now})
	require.NoError(t, err)
	token, hash := conntoken.New()
	s.token = token
	s.database, err = s.db.IssueConnectorToken(ctx, store.TokenRequest{AccountID: s.account.ID, TokenHash: hash, Now: now, MaxDatabases: 5})
	require.NoError(t, err)

	require.NoError(t, demo.Create(ctx, s.clinicDSN, demo.Options{Patients: patients, Seed: 42}))
	// The window starts 400 days back: the demo has receptions up to two
	// years old, so some lie outside it and must not arrive.
	since := now.AddDate(0, 0, -400)
	s.since = time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)

	s.apiAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.apiEnv = map[string]string{"APP_ENV": "development", "DATABASE_URL": s.backendDSN, "REDIS_URL": redisURL(t),
		"HTTP_ADDR": s.apiAddr, "LOG_LEVEL": "warn"}
	t.Cleanup(s.cleanup)
	return s
}

func (s *stand) cleanup() {
	s.mu.Lock()
	procs := s.procs
	s.mu.Unlock()
	for _, p := range procs {
		if p.running() {
			p.stop(s.t)
		}
		out := p.out.String()
		if strings.Contains(out, "WARNING: DATA RACE") {
			s.t.Errorf("%s reported a data race:\n%s", p.name, tail(out))
		}
		if s.t.Failed() {
			s.t.Logf("--- output of %s ---\n%s", p.name, tail(out))
		}
	}
}

func (s *stand) track(p *proc) {
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
}

// startAPI runs `svyazka api` and waits until /readyz answers 200.
func (s *stand) startAPI() {
	s.t.Helper()
	_, api := e2eBinaries(s.t)
	cmd := exec.Command(api, "api")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range s.apiEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Dir = s.t.TempDir()
	p := startProc(s.t, "svyazka api", cmd)
	s.track(p)
	s.api = p
	require.Eventually(s.t, func() bool {
		if !p.running() {
			return true
		}
		resp, err := http.Get("http://" + s.apiAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 20*time.Millisecond, "svyazka api never became ready:\n%s", p.out)
	require.True(s.t, p.running(), "svyazka api exited:\n%s", p.out)
}

// startConnector runs the connector. The first start passes every flag
// (they are saved in the state directory); later starts pass only
// --state-dir, as the Windows service does.
func (s *stand) startConnector(first bool) {
	s.t.Helper()
	connector, _ := e2eBinaries(s.t)
	args := []string{"run", "--state-dir", s.stateDir}
	if first {
		args = append(args, "--backend", "http://"+s.apiAddr, "--token", s.token, "--source", s.clinicDSN,
			"--since", s.since.Format(time.DateOnly), "--poll", "200ms")
	}
	cmd := exec.Command(connector, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.stateDir}
	p := startProc(s.t, "svyazka-connector", cmd)
	s.track(p)
	s.conn = p
}

// recordState is one record as compared, keyed by "kind/source_id".
type recordState struct {
	// Version is compared for receptions only (their RowVersion); patients
	// get the connector's clock.
	Version     int64
	Deleted     bool
	Fingerprint string
}

// expectedRecords reads, straight from the clinic's dbo tables, every
// patient and every reception in the window as they are now.
func (s *stand) expectedRecords() map[string]recordState {
	s.t.Helper()
	conn, err := pgx.Connect(s.ctx, s.clinicDSN)
	require.NoError(s.t, err)
	defer conn.Close(s.ctx)
	out := map[string]recordState{}
	rows, err := conn.Query(s.ctx, `
		SELECT 'reception/' || "ID", ('x' || encode("RowVersion", 'hex'))::bit(64)::bigint,
			concat_ws('|', "ID_Patients", coalesce("ID_Staffs"::text, ''), coalesce("ID_Armchairs"::text, ''),
				"PatientAppeared" IS NOT NULL, "ReceptionStarted" IS NOT NULL, "ReceptionEnded" IS NOT NULL,
				"CheckIssued" IS NOT NULL, "ReceptionCanceled" IS NOT NULL,
				coalesce("ID_ReceptionCancelReasons"::text, ''), coalesce("ID_ReceptionsTransferFrom"::text, ''))
		FROM dbo."Receptions" WHERE "PlanStart" >= $1
		UNION ALL
		SELECT 'patient/' || pa."ID_Persons", 0,
			concat_ws('|', coalesce(btrim(pe."Surname"), ''), coalesce(btrim(pe."MobilePhone"), ''), fv.n, coalesce(fv.first::text, ''))
		FROM dbo."Patients" pa JOIN dbo."Persons" pe ON pe."ID" = pa."ID_Persons"
		CROSS JOIN LATERAL (
			SELECT count(*) AS n, (array_agg(r."ID" ORDER BY r."PlanStart", r."ID"))[1] AS first
			FROM dbo."Receptions" r
			WHERE r."ID_Patients" = pa."ID_Persons" AND r."ReceptionCanceled" IS NULL AND r."ID_ReceptionCancelReasons" IS NULL
				AND (r."ReceptionEnded" IS NOT NULL OR r."CheckIssued" IS NOT NULL) AND r."PlanStart" IS NOT NULL) fv`, s.since)
	require.NoError(s.t, err)
	for rows.Next() {
		var k string
		var st recordState
		require.NoError(s.t, rows.Scan(&k, &st.Version, &st.Fingerprint))
		out[k] = st
	}
	require.NoError(s.t, rows.Err())
	return out
}

// storedRecords reads the patients and receptions in source_records.
func (s *stand) storedRecords() map[string]recordState {
	s.t.Helper()
	rows, err := s.db.SQL().QueryContext(s.ctx, `
		SELECT kind || '/' || source_id, CASE kind WHEN 'reception' THEN version ELSE 0 END, deleted,
			CASE kind WHEN 'reception' THEN concat_ws('|', data->>'patient_id', coalesce(data->>'staff_id', ''),
				coalesce(data->>'chair_id', ''), data ? 'patient_appeared', data ? 'reception_started', data ? 'reception_ended',
				data ? 'check_issued', data ? 'reception_canceled',
				coalesce(data->>'cancel_reason_id', ''), coalesce(data->>'transfer_from_id', ''))
			ELSE concat_ws('|', coalesce(data->>'surname', ''), coalesce(data->>'mobile_phone', ''),
				coalesce(data->>'completed_receptions', '0'), coalesce(data->>'first_visit_reception_id', '')) END
		FROM source_records WHERE database_id = $1 AND kind IN ('patient', 'reception')`, s.database.ID)
	require.NoError(s.t, err)
	defer rows.Close()
	out := map[string]recordState{}
	for rows.Next() {
		var k string
		var st recordState
		require.NoError(s.t, rows.Scan(&k, &st.Version, &st.Deleted, &st.Fingerprint))
		out[k] = st
	}
	require.NoError(s.t, rows.Err())
	return out
}

func (s *stand) storedCount() int {
	s.t.Helper()
	var n int
	require.NoError(s.t, s.db.SQL().QueryRowContext(s.ctx, `SELECT count(*) FROM source_records WHERE database_id = $1`, s.database.ID).Scan(&n))
	return n
}

// waitArrived waits until source_records holds exactly what the clinic
// holds now, and fails with a summary of the difference otherwise.
func (s *stand) waitArrived() map[string]recordState {
	s.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		want, got := s.expectedRecords(), s.storedRecords()
		if cmp.Equal(want, got) {
			return want
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("source_records never matched the clinic: %s", summarize(want, got))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// summarize names the missing, extra and different records (a few of each).
func summarize(want, got map[string]recordState) string {
	var missing, extra, differ []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			missing = append(missing, k)
		case g != w:
			differ = append(differ, fmt.Sprintf("%s: want %+v, got %+v", k, w, g))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	few := func(s []string) []string {
		sort.Strings(s)
		return s[:min(len(s), 5)]
	}
	return fmt.Sprintf("want %d records, got %d; %d missing %v, %d extra %v, %d different %v",
		len(want), len(got), len(missing), few(missing), len(extra), few(extra), len(differ), few(differ))
}

// countByKind counts the stored records of each kind.
func countByKind(want map[string]recordState) map[string]int {
	out := map[string]int{}
	for k := range want {
		out[strings.SplitN(k, "/", 2)[0]]++
	}
	return out
}

// requireDictionaries checks that every doctor, branch, chair and cancel
// reason arrived once.
func (s *stand) requireDictionaries() {
	s.t.Helper()
	conn, err := pgx.Connect(s.ctx, s.clinicDSN)
	require.NoError(s.t, err)
	defer conn.Close(s.ctx)
	want := map[string]int{}
	for kind, table := range map[string]string{"doctor": "Staffs", "branch": "OwnCompanies", "chair": "Armchairs", "cancel_reason": "ReceptionCancelReasons"} {
		var n int
		require.NoError(s.t, conn.QueryRow(s.ctx, `SELECT count(*) FROM dbo."`+table+`"`).Scan(&n))
		want[kind] = n
	}
	got := map[string]int{}
	rows, err := s.db.SQL().QueryContext(s.ctx, `SELECT kind, count(*) FROM source_records
		WHERE database_id = $1 AND kind NOT IN ('patient', 'reception') AND NOT deleted GROUP BY kind`, s.database.ID)
	require.NoError(s.t, err)
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		require.NoError(s.t, rows.Scan(&k, &n))
		got[k] = n
	}
	require.Empty(s.t, cmp.Diff(want, got), "dictionaries (-source +stored)")
}

// batchStats sums ingested_batches of the database.
type batchStats struct {
	Batches, Records, Accepted, WithErrors int
}

func (s *stand) batchStats() batchStats {
	s.t.Helper()
	var b batchStats
	require.NoError(s.t, s.db.SQL().QueryRowContext(s.ctx, `SELECT count(*), coalesce(sum(records), 0), coalesce(sum(accepted), 0),
		count(*) FILTER (WHERE errors <> '[]'::jsonb) FROM ingested_batches WHERE database_id = $1`, s.database.ID).
		Scan(&b.Batches, &b.Records, &b.Accepted, &b.WithErrors))
	return b
}

// stopConnectorAndInspectOutbox stops the connector cleanly and returns its
// outbox's stats (the outbox file is locked while it runs).
func (s *stand) stopConnectorAndInspectOutbox() agent.OutboxStats {
	s.t.Helper()
	s.conn.stop(s.t)
	ob, err := agent.OpenOutbox(filepath.Join(s.stateDir, "outbox.db"))
	require.NoError(s.t, err)
	defer ob.Close()
	st, err := ob.Stats()
	require.NoError(s.t, err)
	return st
}

// maxRowVersion is the clinic's highest reception rowversion now.
func (s *stand) maxRowVersion() int64 {
	s.t.Helper()
	conn, err := pgx.Connect(s.ctx, s.clinicDSN)
	require.NoError(s.t, err)
	defer conn.Close(s.ctx)
	var v int64
	require.NoError(s.t, conn.QueryRow(s.ctx, `SELECT coalesce(max(('x' || encode("RowVersion", 'hex'))::bit(64)::bigint), 0) FROM dbo."Receptions"`).Scan(&v))
	return v
}

// TestConnectorDeliversEveryRecordOnce pairs a real connector with a real
// API over a 200-patient clinic: every patient and every reception in the
// window arrives exactly once (no missing key, no extra key, each with its
// source version and content), the dictionaries too, every record was
// accepted by exactly one batch (no batch applied twice, none refused), the
// connector paired and reported the initial load, and its outbox is empty.
func TestConnectorDeliversEveryRecordOnce(t *testing.T) {
	t.Parallel()
	s := newStand(t, 200)
	s.startAPI()
	s.startConnector(true)

	want := s.waitArrived()
	counts := countByKind(want)
	require.Positive(t, counts["patient"])
	require.Positive(t, counts["reception"])
	s.requireDictionaries()
	require.Eventually(t, func() bool {
		var done bool
		err := s.db.SQL().QueryRowContext(s.ctx, `SELECT initial_load_done FROM clinic_databases WHERE id = $1`, s.database.ID).Scan(&done)
		return err == nil && done
	}, settleTimeout, 50*time.Millisecond, "the heartbeat never reported the initial load done")

	var outside int
	conn, err := pgx.Connect(s.ctx, s.clinicDSN)
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(s.ctx, `SELECT count(*) FROM dbo."Receptions" WHERE "PlanStart" < $1`, s.since).Scan(&outside))
	_ = conn.Close(s.ctx)
	require.Positive(t, outside, "the sample must have receptions outside the window, or 'no extra ids' proves nothing")

	st := s.stopConnectorAndInspectOutbox()
	require.Equal(t, agent.OutboxStats{InitialLoadDone: true}, st, "the outbox is empty, nothing was rejected")

	total := s.storedCount()
	b := s.batchStats()
	require.Equal(t, batchStats{Batches: b.Batches, Records: total, Accepted: total}, b,
		"each stored record came in exactly one accepted batch")
	var paired, instance string
	require.NoError(t, s.db.SQL().QueryRowContext(s.ctx, `SELECT coalesce(instance_id, ''), coalesce(instance_hostname, '') || '/' || connector_status
		FROM clinic_databases WHERE id = $1`, s.database.ID).Scan(&instance, &paired))
	require.Len(t, instance, 36, "the connector paired (or heartbeat set its instance id)")
	require.True(t, strings.HasSuffix(paired, "/connected"), paired)
	t.Logf("delivered %v and %d dictionary rows in %d batches; %d receptions outside the window not sent",
		counts, total-len(want), b.Batches, outside)
}

// ingestInFlight reports whether the API is inside an Ingest transaction
// right now: the connector has sent a batch and waits for its answer.
func (s *stand) ingestInFlight() bool {
	var n int
	err := s.db.SQL().QueryRowContext(s.ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()
		AND state IN ('active', 'idle in transaction')
		AND (query LIKE 'INSERT INTO ingested_batches%' OR query LIKE 'WITH incoming%')`).Scan(&n)
	return err == nil && n > 0
}

// TestConnectorAndAPISurviveSIGKILL kills the connector while the API is
// storing one of its batches (so the batch commits and its answer is lost),
// restarts it, then kills the API in the middle of another batch's
// transaction (so it rolls back), restarts it, all on the same state
// directory and database while the clinic keeps changing (demo.Live). Then
// every record arrived, none twice, each with its current source version and
// content, no batch was refused, and the connector's outbox is empty.
func TestConnectorAndAPISurviveSIGKILL(t *testing.T) {
	t.Parallel()
	s := newStand(t, 3000)
	total := len(s.expectedRecords())
	s.startAPI()

	liveCtx, stopLive := context.WithCancel(s.ctx)
	liveDone := make(chan error, 1)
	go func() {
		liveDone <- demo.Live(liveCtx, s.clinicDSN, demo.LiveOptions{Interval: 50 * time.Millisecond, Seed: 7})
	}()
	defer stopLive()

	s.startConnector(true)
	require.Eventually(t, func() bool { return s.storedCount() > 0 && s.ingestInFlight() }, settleTimeout, time.Millisecond,
		"never saw a batch in flight")
	s.conn.kill(t)
	atConnectorKill := s.storedCount()
	t.Logf("SIGKILL connector mid-batch with %d of ~%d records stored", atConnectorKill, total)
	require.Less(t, atConnectorKill, total/2, "the connector must die mid-load")

	s.startConnector(false)
	require.Eventually(t, func() bool { return s.storedCount() >= atConnectorKill+total/4 && s.ingestInFlight() },
		settleTimeout, time.Millisecond, "delivery did not resume after the connector restarted")
	s.api.kill(t)
	atAPIKill := s.storedCount()
	t.Logf("SIGKILL api mid-request with %d of ~%d records stored", atAPIKill, total)
	require.Less(t, atAPIKill, total, "the API must die mid-load")
	s.startAPI()

	// Let changes keep flowing after both came back, then stop the clinic
	// and wait for the last of them.
	require.Eventually(t, func() bool { return s.storedCount() > atAPIKill }, settleTimeout, 10*time.Millisecond)
	stopLive()
	require.NoError(t, <-liveDone)
	want := s.waitArrived()
	s.requireDictionaries()

	st := s.stopConnectorAndInspectOutbox()
	require.Equal(t, agent.OutboxStats{InitialLoadDone: true}, st, "the outbox is empty, nothing was rejected")
	b := s.batchStats()
	require.Zero(t, b.WithErrors, "no record was refused")
	require.Equal(t, b.Records, b.Accepted)
	t.Logf("final: %v; %d batches, %d records accepted (re-reads of changed rows included)", countByKind(want), b.Batches, b.Accepted)
}

var changedReception = regexp.MustCompile(`^reception (\d+)`)

// outboxContents reads every pending batch of a copy of the stopped
// connector's outbox (the original stays as it is) and returns the newest
// version of each record in it, and the reader's cursor.
func (s *stand) outboxContents() (map[string]int64, []byte) {
	s.t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.stateDir, "outbox.db"))
	require.NoError(s.t, err)
	cp := filepath.Join(s.t.TempDir(), "outbox-copy.db")
	require.NoError(s.t, os.WriteFile(cp, raw, 0o600))
	ob, err := agent.OpenOutbox(cp)
	require.NoError(s.t, err)
	defer ob.Close()
	cursor, err := ob.Cursor()
	require.NoError(s.t, err)
	out := map[string]int64{}
	for {
		sb, err := ob.Head()
		if err == agent.ErrEmpty {
			return out, cursor
		}
		require.NoError(s.t, err)
		var b protocol.Batch
		require.NoError(s.t, json.Unmarshal(sb.Body, &b))
		for _, r := range b.Records {
			k := string(r.Kind) + "/" + r.SourceID
			out[k] = max(out[k], r.Version)
		}
		require.NoError(s.t, ob.Ack(sb.Key))
	}
}

// TestConnectorBuffersWhileBackendIsDown stops the API for ten seconds while
// the clinic keeps changing. The connector keeps reading meanwhile: its
// outbox (inspected in a copy of the file) holds every reception changed
// during the outage that its cursor had passed, at its current version. Once
// the API is back, the final state of every changed reception, and of
// everything else, arrives.
func TestConnectorBuffersWhileBackendIsDown(t *testing.T) {
	t.Parallel()
	s := newStand(t, 300)
	s.startAPI()
	s.startConnector(true)
	s.waitArrived()
	before := s.storedRecords()

	s.api.stop(t)
	rvAtStop := s.maxRowVersion()
	changed := map[string]bool{}
	outage := time.Now().Add(10 * time.Second)
	for seed := uint64(1); time.Now().Before(outage); seed++ {
		what, err := demo.Step(s.ctx, s.clinicDSN, seed, time.Now())
		require.NoError(t, err)
		if m := changedReception.FindStringSubmatch(what); m != nil {
			changed["reception/"+m[1]] = true
		}
		time.Sleep(20 * time.Millisecond) // the clinic's pace, not a wait for a condition
	}
	require.Greater(t, s.maxRowVersion(), rvAtStop, "the clinic changed during the outage")
	require.NotEmpty(t, changed)
	require.Equal(t, before, s.storedRecords(), "nothing can arrive while the API is down")

	st := s.stopConnectorAndInspectOutbox()
	require.Zero(t, st.Rejected)
	inOutbox, rawCursor := s.outboxContents()
	var cursor struct {
		LastRV int64 `json:"last_rv"`
	}
	require.NoError(t, json.Unmarshal(rawCursor, &cursor))
	require.Greater(t, cursor.LastRV, rvAtStop, "the connector read changes made while the backend was down")
	buffered := 0
	for k, w := range s.expectedRecords() {
		if strings.HasPrefix(k, "reception/") && w.Version > rvAtStop && w.Version <= cursor.LastRV {
			require.Equal(t, w.Version, inOutbox[k], "%s changed during the outage and was read: it waits in the outbox", k)
			buffered++
		}
	}
	require.Positive(t, buffered)
	t.Logf("outbox after the outage: %+v; %d receptions changed, %d read into the outbox", st, len(changed), buffered)

	s.startConnector(false)
	s.startAPI()
	want := s.waitArrived()
	got := s.storedRecords()
	for k := range changed {
		if _, inWindow := want[k]; inWindow {
			require.Equal(t, want[k], got[k], k)
		}
	}
	st = s.stopConnectorAndInspectOutbox()
	require.Zero(t, st.Batches, "the outbox drained")
	require.Zero(t, st.Rejected)
}

// TestConnectorAPIRefusesBadRequests sends what a broken or hostile client
// would to a running API: an unknown token and a revoked one are 401 (the
// latter saying so), a body over 4 MiB is 413 (with and without a
// Content-Length), and malformed batches are 400; all with the standard
// error body, and none of them stores anything.
func TestConnectorAPIRefusesBadRequests(t *testing.T) {
	t.Parallel()
	s := newStand(t, 10)
	s.startAPI()
	url := "http://" + s.apiAddr + protocol.PathBatches

	// post returns the status and, for an error, the decoded standard body.
	post := func(token string, body []byte, chunked bool) (int, map[string]map[string]string) {
		t.Helper()
		var rd io.Reader = bytes.NewReader(body)
		if chunked {
			rd = struct{ io.Reader }{rd} // hides Len: sent without a Content-Length
		}
		req, err := http.NewRequest(http.MethodPost, url, rd)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		if resp.StatusCode == http.StatusOK {
			return resp.StatusCode, nil
		}
		var out map[string]map[string]string
		require.NoError(t, json.Unmarshal(raw, &out), "status %d: %s", resp.StatusCode, raw)
		return resp.StatusCode, out
	}
	patient := func(id int) protocol.Record {
		data, err := json.Marshal(protocol.IdentPatient{Surname: "Иванова", Name: "Мария", MobilePhone: "+7 912 345-67-89"})
		require.NoError(t, err)
		return protocol.Record{Kind: protocol.KindPatient, SourceID: fmt.Sprint(id), Version: int64(id), Data: data}
	}
	batch := func(n int) []byte {
		b := protocol.Batch{BatchID: uuid.NewString()}
		for i := range n {
			b.Records = append(b.Records, patient(i+1))
		}
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		return raw
	}

	// A good batch first, so "nothing changed" is measured against rows.
	status, _ := post(s.token, batch(3), false)
	require.Equal(t, http.StatusOK, status)
	var baseline string
	snapshot := func() string {
		var out string
		require.NoError(t, s.db.SQL().QueryRowContext(s.ctx, `SELECT
			(SELECT count(*) || '/' || coalesce(max(change_seq), 0) || '/' || coalesce(sum(version), 0) FROM source_records) || ' ' ||
			(SELECT count(*) FROM ingested_batches)`).Scan(&out))
		return out
	}
	baseline = snapshot()
	require.Equal(t, "3/3/6 1", baseline)

	// The old token is revoked by issuing a new one for the same database.
	newToken, newHash := conntoken.New()
	_, err := s.db.IssueConnectorToken(s.ctx, store.TokenRequest{AccountID: s.account.ID, DatabaseID: s.database.ID,
		TokenHash: newHash, Now: time.Now(), MaxDatabases: 5})
	require.NoError(t, err)
	unknown, _ := conntoken.New()

	oversized := append(batch(1), bytes.Repeat([]byte(" "), protocol.MaxBatchBytes)...)
	over500 := batch(protocol.MaxRecordsPerBatch + 1)
	noID, err := json.Marshal(map[string]any{"records": []protocol.Record{patient(7)}})
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		token   string
		body    []byte
		chunked bool
		status  int
		code    string
		message string
	}{
		"UnknownToken":       {unknown, batch(2), false, http.StatusUnauthorized, "unauthorized", "не найден"},
		"MalformedToken":     {"not-a-token", batch(2), false, http.StatusUnauthorized, "unauthorized", "повреждён"},
		"RevokedToken":       {s.token, batch(2), false, http.StatusUnauthorized, "unauthorized", "отозван"},
		"Oversized":          {newToken, oversized, false, http.StatusRequestEntityTooLarge, "too_large", ""},
		"OversizedChunked":   {newToken, oversized, true, http.StatusRequestEntityTooLarge, "too_large", ""},
		"OversizedBadToken":  {unknown, oversized, false, http.StatusRequestEntityTooLarge, "too_large", ""},
		"BadJSON":            {newToken, []byte(`{"batch_id": "` + uuid.NewString() + `", "records": [`), false, http.StatusBadRequest, "invalid", ""},
		"TrailingData":       {newToken, append(batch(1), []byte(`{}`)...), false, http.StatusBadRequest, "invalid", ""},
		"UnknownField":       {newToken, []byte(`{"batch_id":"` + uuid.NewString() + `","records":[],"extra":1}`), false, http.StatusBadRequest, "invalid", ""},
		"MissingBatchID":     {newToken, noID, false, http.StatusBadRequest, "invalid", "batch_id"},
		"UpperCaseBatchID":   {newToken, bytes.Replace(batch(1), []byte(`"batch_id":"`), []byte(`"batch_id":"A`), 1), false, http.StatusBadRequest, "invalid", "batch_id"},
		"TooManyRecords":     {newToken, over500, false, http.StatusBadRequest, "invalid", "501"},
		"NoRecords":          {newToken, []byte(`{"batch_id":"` + uuid.NewString() + `","records":[]}`), false, http.StatusBadRequest, "invalid", ""},
		"RecordsNotAnArray":  {newToken, []byte(`{"batch_id":"` + uuid.NewString() + `","records":{}}`), false, http.StatusBadRequest, "invalid", ""},
		"NotJSONAtAll":       {newToken, []byte("batch_id=1"), false, http.StatusBadRequest, "invalid", ""},
		"EmptyBody":          {newToken, nil, false, http.StatusBadRequest, "invalid", ""},
		"BatchIDIsANumber":   {newToken, []byte(`{"batch_id":1,"records":[]}`), false, http.StatusBadRequest, "invalid", ""},
		"VersionIsAString":   {newToken, []byte(`{"batch_id":"` + uuid.NewString() + `","records":[{"kind":"patient","source_id":"1","version":"1"}]}`), false, http.StatusBadRequest, "invalid", ""},
		"NoAuthorizationHdr": {"", batch(1), false, http.StatusUnauthorized, "unauthorized", ""},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := post(tc.token, tc.body, tc.chunked)
			require.Equal(t, tc.status, status, "%v", body)
			require.Len(t, body, 1, "only the error object: %v", body)
			require.Len(t, body["error"], 2, "code and message: %v", body)
			require.Equal(t, tc.code, body["error"]["code"])
			require.NotEmpty(t, body["error"]["message"])
			require.Contains(t, body["error"]["message"], tc.message)
		})
	}
	require.Equal(t, baseline, snapshot(), "no refused request stored anything")

	// The new token works, so the refusals above were about the requests.
	status, _ = post(newToken, batch(1), false)
	require.Equal(t, http.StatusOK, status)
}
