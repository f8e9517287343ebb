// Package ingest checks what a connector delivers before anything is stored.
// It is pure (no I/O): the connector API calls Check on every batch and
// stores what it returns.
//
// Promises, in the order they are checked:
//   - a batch has a UUID batch_id and 1..protocol.MaxRecordsPerBatch records,
//     otherwise the whole batch is refused (ErrBatch) and nothing is stored;
//   - each record is checked on its own: a known kind, a decimal source id,
//     a positive version, and for a record that is not deleted, data that
//     decodes into the kind's payload (unknown fields refused) and passes its
//     Validate. A bad record is listed in Errors with its index and a reason;
//     the good records of the same batch are kept;
//   - data is stored in canonical form (re-encoded from the decoded payload),
//     and its content hash covers kind, deleted flag and canonical data, so a
//     resend of unchanged content is recognised whatever its version;
//   - two records with one key in a batch collapse into the newest version.
package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/svyazka/svyazka/connector/protocol"
)

// ErrBatch marks a batch refused as a whole.
var ErrBatch = errors.New("ingest: bad batch")

// Record is a checked record, ready to store.
type Record struct {
	Kind     protocol.Kind
	SourceID string
	Version  int64
	Deleted  bool
	// Data is the canonical JSON of the payload ("{}" when deleted).
	Data []byte
	Hash []byte
}

// Checked is the outcome of Check.
type Checked struct {
	BatchID string
	Total   int
	Records []Record
	Errors  []protocol.RecordError
}

// Check validates a batch. It returns an error wrapping ErrBatch when the
// batch as a whole is unusable; otherwise every record is either in Records
// or in Errors.
func Check(b protocol.Batch) (Checked, error) {
	id, err := uuid.Parse(b.BatchID)
	if err != nil || b.BatchID != id.String() {
		return Checked{}, fmt.Errorf("%w: batch_id must be a UUID in lower-case canonical form", ErrBatch)
	}
	if len(b.Records) == 0 || len(b.Records) > protocol.MaxRecordsPerBatch {
		return Checked{}, fmt.Errorf("%w: a batch carries 1 to %d records, got %d", ErrBatch, protocol.MaxRecordsPerBatch, len(b.Records))
	}
	out := Checked{BatchID: b.BatchID, Total: len(b.Records)}
	type key struct {
		kind protocol.Kind
		id   string
	}
	at := make(map[key]int, len(b.Records))
	for i, r := range b.Records {
		rec, err := checkRecord(r)
		if err != nil {
			out.Errors = append(out.Errors, protocol.RecordError{Index: i, Kind: safeKind(r.Kind), SourceID: safeID(r.SourceID), Message: err.Error()})
			continue
		}
		k := key{rec.Kind, rec.SourceID}
		if j, seen := at[k]; seen {
			if rec.Version > out.Records[j].Version {
				out.Records[j] = rec
			}
			continue
		}
		at[k] = len(out.Records)
		out.Records = append(out.Records, rec)
	}
	return out, nil
}

func checkRecord(r protocol.Record) (Record, error) {
	known := false
	for _, k := range protocol.Kinds {
		known = known || r.Kind == k
	}
	switch {
	case !known:
		return Record{}, fmt.Errorf("unknown kind %q", safeKind(r.Kind))
	case !protocol.ValidSourceID(r.SourceID):
		return Record{}, errors.New("source_id must be 1 to 19 decimal digits")
	case r.Version <= 0:
		return Record{}, errors.New("version must be positive")
	}
	rec := Record{Kind: r.Kind, SourceID: r.SourceID, Version: r.Version, Deleted: r.Deleted, Data: []byte("{}")}
	if !r.Deleted {
		if len(bytes.TrimSpace(r.Data)) == 0 {
			return Record{}, errors.New("data is required unless deleted")
		}
		payload, err := protocol.DecodeIdentData(r.Kind, r.Data)
		if err != nil {
			return Record{}, errors.New(strings.TrimPrefix(err.Error(), protocol.ErrInvalidData.Error()+": "))
		}
		canonical, err := json.Marshal(payload)
		if err != nil {
			return Record{}, fmt.Errorf("data cannot be encoded: %v", err)
		}
		// PostgreSQL's jsonb cannot hold a NUL character.
		if bytes.Contains(canonical, []byte(`\u0000`)) {
			return Record{}, errors.New("data contains a NUL character")
		}
		rec.Data = canonical
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%t\x00", rec.Kind, rec.Deleted)
	h.Write(rec.Data)
	rec.Hash = h.Sum(nil)
	return rec, nil
}

// safeKind and safeID bound what is echoed back from a bad record.
func safeKind(k protocol.Kind) protocol.Kind { return protocol.Kind(bounded(string(k), 32)) }
func safeID(id string) string                { return bounded(id, 32) }

func bounded(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
}
