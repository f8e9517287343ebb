// Package protocol is the wire contract between the on-premises connector
// (svyazka-connector) and the backend's /api/connector/v1 routes. Both sides
// import it, so a field cannot drift between them.
//
// Every request carries the connector token as "Authorization: Bearer TOKEN".
// Bodies are JSON (Content-Type: application/json). Errors come back as the
// backend's standard body {"error":{"code","message"}}.
//
//	POST /api/connector/v1/pair       Pair        -> PairResult
//	POST /api/connector/v1/heartbeat  Heartbeat   -> HeartbeatResult
//	POST /api/connector/v1/batches    Batch       -> BatchResult
//
// The connector sends facts, never our states: a Record is one source row as
// the source has it (IDENT's timestamps, ids and flags); state, first visit
// and moves are derived on the backend.
package protocol

import "encoding/json"

// Paths of the connector API, relative to the backend's base URL.
const (
	PathPair      = "/api/connector/v1/pair"
	PathHeartbeat = "/api/connector/v1/heartbeat"
	PathBatches   = "/api/connector/v1/batches"
)

// MaxRecordsPerBatch is the most records one Batch may carry; the backend
// answers 400 above it. MaxBatchBytes is the largest body it accepts (413).
const (
	MaxRecordsPerBatch = 500
	MaxBatchBytes      = 4 << 20
)

// Kind names what a Record describes.
type Kind string

// The record kinds a source sends.
const (
	KindPatient      Kind = "patient"
	KindReception    Kind = "reception"
	KindDoctor       Kind = "doctor"
	KindBranch       Kind = "branch"
	KindChair        Kind = "chair"
	KindCancelReason Kind = "cancel_reason"
)

// Kinds lists every valid Kind.
var Kinds = []Kind{KindPatient, KindReception, KindDoctor, KindBranch, KindChair, KindCancelReason}

// Batch is a group of records the connector delivers at least once. BatchID
// is a UUID unique for all time; a resend of the same batch carries the same
// id and is acknowledged without being applied twice.
type Batch struct {
	BatchID string   `json:"batch_id"`
	Records []Record `json:"records"`
}

// Record is one source row. (Kind, SourceID) is its key within the database;
// Version grows with every change of the row's content (the row's rowversion
// where the source has one, otherwise a connector-side counter), so the
// backend keeps the newest version and ignores stale resends. Deleted marks a
// row that vanished from the source (found by the periodic re-scan); Data is
// then omitted.
type Record struct {
	Kind     Kind            `json:"kind"`
	SourceID string          `json:"source_id"`
	Version  int64           `json:"version"`
	Deleted  bool            `json:"deleted,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// BatchResult acknowledges a batch: every record is either accepted (stored)
// or listed in Errors, and nothing in Errors will ever be accepted on a
// resend, so the connector drops the whole batch from its outbox.
// Duplicate is true when the batch id was seen before.
type BatchResult struct {
	BatchID   string        `json:"batch_id"`
	Accepted  int           `json:"accepted"`
	Duplicate bool          `json:"duplicate"`
	Errors    []RecordError `json:"errors"`
}

// RecordError says why one record of a batch was refused.
type RecordError struct {
	Index    int    `json:"index"`
	Kind     Kind   `json:"kind"`
	SourceID string `json:"source_id"`
	Message  string `json:"message"`
}

// Pair is sent once when the IT person presses «Подключить»: it binds the
// token to this connector installation (InstanceID, a UUID the connector
// keeps in its state directory). A token paired with another instance is
// refused with 409.
type Pair struct {
	InstanceID       string `json:"instance_id"`
	Hostname         string `json:"hostname"`
	ConnectorVersion string `json:"connector_version"`
}

// PairResult names what the token is for.
type PairResult struct {
	AccountName  string `json:"account_name"`
	DatabaseName string `json:"database_name"`
	TimeZone     string `json:"time_zone"`
}

// DatabaseState is the connector's view of its source database.
type DatabaseState string

// Database states reported in a heartbeat.
const (
	DatabaseConnected    DatabaseState = "connected"
	DatabaseDisconnected DatabaseState = "disconnected"
)

// Heartbeat is sent every minute (and at once after a state change). It
// proves the connector is reachable and reports whether it can read its
// database; Detail is a short user-safe reason when it cannot (wrong
// password, database not found), never a credential.
type Heartbeat struct {
	InstanceID       string `json:"instance_id"`
	ConnectorVersion string `json:"connector_version"`
	// Hostname is the connector's server name, shown in the widget.
	Hostname      string        `json:"hostname,omitempty"`
	Database      DatabaseState `json:"database"`
	Detail        string        `json:"detail,omitempty"`
	SourceVersion string        `json:"source_version,omitempty"`
	// Pending is how many records wait in the connector's outbox.
	Pending int64 `json:"pending"`
	// InitialLoadDone is true once the first full read finished.
	InitialLoadDone bool `json:"initial_load_done"`
}

// HeartbeatResult tells the connector how often to report.
type HeartbeatResult struct {
	IntervalSeconds int `json:"interval_seconds"`
}
