// Package agenttest has fakes for testing the connector: a Backend that
// implements the connector API of connector/protocol faithfully (bearer
// tokens, pairing with 401/409, the 400/413 limits, dedupe by batch id,
// per-record errors) with fault injection, and a Source that serves
// generated records page by page.
package agenttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Fault is what the backend does to the next request instead of answering.
type Fault struct {
	// Status answers with this status (and an error body) when non-zero.
	Status int
	// RetryAfter is sent as Retry-After (seconds) with Status.
	RetryAfter string
	// Drop closes the connection without an answer (a network error).
	Drop bool
	// DropAfterApply applies the batch, then closes the connection: the
	// connector cannot know it was stored.
	DropAfterApply bool
}

// Backend is a fake of the backend's connector API. Its zero value is not
// usable; call NewBackend.
type Backend struct {
	Server *httptest.Server

	mu sync.Mutex
	// tokens maps a token to the instance it is paired with ("" = not yet).
	tokens  map[string]string
	revoked map[string]string
	// MaxBodyBytes is the 413 limit (protocol.MaxBatchBytes by default).
	maxBody int
	faults  []Fault
	// down makes every request fail with a dropped connection.
	down bool
	// seen maps batch id to its result (dedupe).
	seen map[string]protocol.BatchResult
	// applied counts how many times each record version was applied.
	applied    map[string]int
	order      []string
	heartbeats []protocol.Heartbeat
	requests   map[string]int
	duplicates int
	// OnBatch, when set, runs after a batch was applied, with the lock released.
	onBatch func(protocol.BatchResult)
	// hbInterval is returned in HeartbeatResult.
	hbInterval int
}

// NewBackend starts a fake backend that knows token.
func NewBackend(token string) *Backend {
	b := &Backend{
		tokens:     map[string]string{token: ""},
		revoked:    map[string]string{},
		maxBody:    protocol.MaxBatchBytes,
		seen:       map[string]protocol.BatchResult{},
		applied:    map[string]int{},
		requests:   map[string]int{},
		hbInterval: 60,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathPair, b.pair)
	mux.HandleFunc("POST "+protocol.PathHeartbeat, b.heartbeat)
	mux.HandleFunc("POST "+protocol.PathBatches, b.batches)
	b.Server = httptest.NewServer(b.middleware(mux))
	return b
}

// URL is the backend's base URL.
func (b *Backend) URL() string { return b.Server.URL }

// Close stops the server.
func (b *Backend) Close() { b.Server.Close() }

// AddToken makes another token known.
func (b *Backend) AddToken(token, pairedWith string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens[token] = pairedWith
}

// Revoke makes token answer 401 with message.
func (b *Backend) Revoke(token, message string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.revoked[token] = message
}

// SetMaxBody sets the 413 limit.
func (b *Backend) SetMaxBody(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maxBody = n
}

// SetDown makes every request fail (true) or work again (false).
func (b *Backend) SetDown(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = down
}

// Inject queues faults for the next batch requests, in order.
func (b *Backend) Inject(f ...Fault) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = append(b.faults, f...)
}

// SetHeartbeatInterval sets HeartbeatResult.IntervalSeconds (0: let the connector choose).
func (b *Backend) SetHeartbeatInterval(seconds int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hbInterval = seconds
}

// Duplicates is how many batches were answered as duplicates.
func (b *Backend) Duplicates() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.duplicates
}

// Seen reports whether the backend applied the batch id.
func (b *Backend) Seen(batchID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.seen[batchID]
	return ok
}

// OnBatch sets a hook run after each applied (not duplicate) batch.
func (b *Backend) OnBatch(fn func(protocol.BatchResult)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onBatch = fn
}

// Applied returns how many times each record key (kind/source_id/version)
// was applied, and the keys in the order first applied.
func (b *Backend) Applied() (map[string]int, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string]int, len(b.applied))
	for k, v := range b.applied {
		m[k] = v
	}
	return m, append([]string(nil), b.order...)
}

// AppliedCount is the number of distinct records applied.
func (b *Backend) AppliedCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.applied)
}

// Heartbeats returns the heartbeats received.
func (b *Backend) Heartbeats() []protocol.Heartbeat {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]protocol.Heartbeat(nil), b.heartbeats...)
}

// Requests returns how many requests reached path.
func (b *Backend) Requests(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests[path]
}

// RecordKey is the key Applied uses.
func RecordKey(r protocol.Record) string {
	return fmt.Sprintf("%s/%s/%d", r.Kind, r.SourceID, r.Version)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// middleware counts requests, applies outages and checks the bearer token.
func (b *Backend) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.requests[r.URL.Path]++
		down := b.down
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		_, known := b.tokens[token]
		revokedMsg, revoked := b.revoked[token]
		b.mu.Unlock()
		switch {
		case down:
			drop(w)
		case !ok || !known:
			writeError(w, http.StatusUnauthorized, "unauthorized", "Токен не найден")
		case revoked:
			writeError(w, http.StatusUnauthorized, "unauthorized", revokedMsg)
		case r.Header.Get("Content-Type") != "application/json":
			writeError(w, http.StatusBadRequest, "invalid", "ожидается application/json")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (b *Backend) pair(w http.ResponseWriter, r *http.Request) {
	var p protocol.Pair
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&p); err != nil || p.InstanceID == "" {
		writeError(w, http.StatusBadRequest, "invalid", "неверный запрос")
		return
	}
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	b.mu.Lock()
	defer b.mu.Unlock()
	if paired := b.tokens[token]; paired != "" && paired != p.InstanceID {
		writeError(w, http.StatusConflict, "conflict", "Токен уже используется коннектором на другом сервере")
		return
	}
	b.tokens[token] = p.InstanceID
	writeJSON(w, protocol.PairResult{AccountName: "Клиника Улыбка", DatabaseName: "IDENT PZ", TimeZone: "Europe/Moscow"})
}

func (b *Backend) heartbeat(w http.ResponseWriter, r *http.Request) {
	var hb protocol.Heartbeat
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&hb); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "неверный запрос")
		return
	}
	b.mu.Lock()
	b.heartbeats = append(b.heartbeats, hb)
	iv := b.hbInterval
	b.mu.Unlock()
	writeJSON(w, protocol.HeartbeatResult{IntervalSeconds: iv})
}

func (b *Backend) batches(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	var fault Fault
	if len(b.faults) > 0 {
		fault, b.faults = b.faults[0], b.faults[1:]
	}
	maxBody := b.maxBody
	b.mu.Unlock()
	switch {
	case fault.Drop:
		drop(w)
		return
	case fault.Status != 0:
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		writeError(w, fault.Status, "unavailable", "injected")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(maxBody)+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "тело не прочитано")
		return
	}
	if len(body) > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "invalid", "пакет слишком большой")
		return
	}
	var batch protocol.Batch
	if err := json.Unmarshal(body, &batch); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "неверный JSON: "+err.Error())
		return
	}
	if _, err := uuid.Parse(batch.BatchID); err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "batch_id должен быть UUID")
		return
	}
	if len(batch.Records) == 0 || len(batch.Records) > protocol.MaxRecordsPerBatch {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("в пакете должно быть от 1 до %d записей", protocol.MaxRecordsPerBatch))
		return
	}
	b.mu.Lock()
	if res, ok := b.seen[batch.BatchID]; ok {
		b.duplicates++
		b.mu.Unlock()
		if fault.DropAfterApply {
			drop(w)
			return
		}
		res.Duplicate = true
		writeJSON(w, res)
		return
	}
	res := protocol.BatchResult{BatchID: batch.BatchID, Errors: []protocol.RecordError{}}
	for i, rec := range batch.Records {
		if msg := validate(rec); msg != "" {
			res.Errors = append(res.Errors, protocol.RecordError{Index: i, Kind: rec.Kind, SourceID: rec.SourceID, Message: msg})
			continue
		}
		key := RecordKey(rec)
		if b.applied[key] == 0 {
			b.order = append(b.order, key)
		}
		b.applied[key]++
		res.Accepted++
	}
	b.seen[batch.BatchID] = res
	hook := b.onBatch
	b.mu.Unlock()
	if hook != nil {
		hook(res)
	}
	if fault.DropAfterApply {
		drop(w)
		return
	}
	writeJSON(w, res)
}

func validate(r protocol.Record) string {
	known := false
	for _, k := range protocol.Kinds {
		known = known || k == r.Kind
	}
	switch {
	case !known:
		return "неизвестный вид записи"
	case r.SourceID == "":
		return "пустой source_id"
	case !r.Deleted && len(r.Data) == 0:
		return "нет данных"
	}
	return ""
}
