package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/svyazka/svyazka/connector/protocol"
)

// The outbox file layout (bbolt, fsync on every commit):
//
//	meta      "cursor"            the source cursor after the last stored page
//	          "initial_load_done" "1" once Read first reported more=false
//	          "pending_records"   uint64 BE: records in "batches"
//	          "pending_bytes"     uint64 BE: body bytes in "batches"
//	batches   key: 8-byte BE sequence [+ one byte per 413 split, 0 or 1]
//	          value: batchHeader (version, record count, batch id) + JSON body
//	rejected  key: 8-byte BE sequence of the bucket
//	          value: JSON rejectedEntry (why, when, the body as it was)
//
// Keys sort bytewise, so the first key of "batches" is the oldest batch and a
// split batch's halves take its place in the order.
var (
	bucketMeta     = []byte("meta")
	bucketBatches  = []byte("batches")
	bucketRejected = []byte("rejected")

	keyCursor         = []byte("cursor")
	keyInitialLoad    = []byte("initial_load_done")
	keyPendingRecords = []byte("pending_records")
	keyPendingBytes   = []byte("pending_bytes")
)

const (
	headerVersion = 1
	// headerLen is version(1) + record count(4) + batch id(36).
	headerLen = 1 + 4 + 36
	// batchOverhead is the JSON around the records: {"batch_id":"<36>","records":[ ... ]}.
	batchOverhead = len(`{"batch_id":"`) + 36 + len(`","records":[`) + len(`]}`)
)

// ErrEmpty is returned by Outbox.Head when no batch waits.
var ErrEmpty = errors.New("agent: outbox is empty")

// Outbox is the durable queue of batches between the source and the backend.
// Every method runs in its own bbolt transaction; it is safe for concurrent use.
type Outbox struct {
	db         *bolt.DB
	maxRecords int
	maxBytes   int
	now        func() time.Time
	newID      func() string
}

// StoredBatch is one batch waiting in the outbox.
type StoredBatch struct {
	Key     []byte
	BatchID string
	Records int
	// Body is the exact JSON of the protocol.Batch to POST.
	Body []byte
}

// OutboxStats is the outbox's size.
type OutboxStats struct {
	Batches         int
	PendingRecords  int64
	PendingBytes    int64
	Rejected        int
	InitialLoadDone bool
}

type rejectedEntry struct {
	BatchID    string          `json:"batch_id,omitempty"`
	Reason     string          `json:"reason"`
	Status     int             `json:"status,omitempty"`
	RejectedAt time.Time       `json:"rejected_at"`
	Body       json.RawMessage `json:"body,omitempty"`
	// Raw holds a record that could not be encoded as JSON at all.
	Raw string `json:"raw,omitempty"`
}

// OpenOutbox opens (creating if needed) the outbox file at path. It fails if
// another process holds the file (after a few seconds) or it is corrupt.
func OpenOutbox(path string) (*Outbox, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoSync: false})
	if err != nil {
		return nil, fmt.Errorf("agent: open outbox %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketBatches, bucketRejected} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("agent: init outbox %s: %w", path, err)
	}
	return &Outbox{
		db:         db,
		maxRecords: protocol.MaxRecordsPerBatch,
		maxBytes:   protocol.MaxBatchBytes,
		now:        func() time.Time { return time.Now().UTC() },
		newID:      func() string { return uuid.NewString() },
	}, nil
}

// Close closes the file. Everything committed before stays.
func (o *Outbox) Close() error { return o.db.Close() }

// Cursor returns the source cursor stored with the last page (nil at first).
func (o *Outbox) Cursor() ([]byte, error) {
	var cur []byte
	err := o.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyCursor); v != nil {
			cur = bytes.Clone(v)
		}
		return nil
	})
	return cur, err
}

// AppendResult says what Append stored.
type AppendResult struct {
	Batches  int
	Records  int
	Rejected int
}

// Append stores one page of records, split into new batches of at most
// MaxRecordsPerBatch records and MaxBatchBytes bytes, together with the
// cursor after the page, in one transaction: either the whole page and its
// cursor are stored or nothing is. A record that cannot be encoded or is
// larger than a batch alone goes to the rejected bucket (it could never be
// delivered). caughtUp marks the initial load as done.
func (o *Outbox) Append(records []protocol.Record, next []byte, caughtUp bool) (AppendResult, error) {
	var res AppendResult
	err := o.db.Update(func(tx *bolt.Tx) error {
		res = AppendResult{}
		b := tx.Bucket(bucketBatches)
		var (
			buf   bytes.Buffer
			count int
		)
		flush := func() error {
			if count == 0 {
				return nil
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			buf.WriteString("]}")
			if err := o.putBatch(tx, seqKey(seq), buf.Bytes(), count); err != nil {
				return err
			}
			res.Batches++
			res.Records += count
			buf.Reset()
			count = 0
			return nil
		}
		for i := range records {
			enc, err := json.Marshal(&records[i])
			if err != nil {
				res.Rejected++
				if err := o.putRejected(tx, rejectedEntry{
					Reason: fmt.Sprintf("record %s/%s cannot be encoded: %v", records[i].Kind, records[i].SourceID, err),
					Raw:    string(records[i].Data),
				}); err != nil {
					return err
				}
				continue
			}
			if batchOverhead+len(enc) > o.maxBytes {
				res.Rejected++
				if err := o.putRejected(tx, rejectedEntry{
					Reason: fmt.Sprintf("record %s/%s is %d bytes, larger than a batch may be", records[i].Kind, records[i].SourceID, len(enc)),
					Body:   enc,
				}); err != nil {
					return err
				}
				continue
			}
			// +1 for the comma before every record but the first.
			if count > 0 && (count >= o.maxRecords || buf.Len()+1+len(enc)+2 > o.maxBytes) {
				if err := flush(); err != nil {
					return err
				}
			}
			if count == 0 {
				buf.WriteString(`{"batch_id":"`)
				buf.WriteString(o.newID())
				buf.WriteString(`","records":[`)
			} else {
				buf.WriteByte(',')
			}
			buf.Write(enc)
			count++
		}
		if err := flush(); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if next != nil {
			if err := meta.Put(keyCursor, next); err != nil {
				return err
			}
		}
		if caughtUp {
			return meta.Put(keyInitialLoad, []byte("1"))
		}
		return nil
	})
	if err != nil {
		return AppendResult{}, fmt.Errorf("agent: append page of %d records: %w", len(records), err)
	}
	return res, nil
}

// putBatch stores body (a complete protocol.Batch JSON whose batch_id starts
// at a fixed offset) under key and updates the pending counters.
func (o *Outbox) putBatch(tx *bolt.Tx, key, body []byte, records int) error {
	id := body[len(`{"batch_id":"`) : len(`{"batch_id":"`)+36]
	v := make([]byte, headerLen+len(body))
	v[0] = headerVersion
	binary.BigEndian.PutUint32(v[1:5], uint32(records))
	copy(v[5:headerLen], id)
	copy(v[headerLen:], body)
	if err := tx.Bucket(bucketBatches).Put(key, v); err != nil {
		return err
	}
	return addCounters(tx, int64(records), int64(len(body)))
}

func (o *Outbox) putRejected(tx *bolt.Tx, e rejectedEntry) error {
	e.RejectedAt = o.now()
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b := tx.Bucket(bucketRejected)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	return b.Put(seqKey(seq), v)
}

// Head returns the oldest batch, or ErrEmpty.
func (o *Outbox) Head() (StoredBatch, error) {
	var sb StoredBatch
	err := o.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketBatches).Cursor().First()
		if k == nil {
			return ErrEmpty
		}
		var err error
		sb, err = decodeStored(k, v)
		return err
	})
	return sb, err
}

func decodeStored(k, v []byte) (StoredBatch, error) {
	if len(v) < headerLen || v[0] != headerVersion {
		return StoredBatch{}, fmt.Errorf("agent: outbox batch %x: unknown format", k)
	}
	return StoredBatch{
		Key:     bytes.Clone(k),
		Records: int(binary.BigEndian.Uint32(v[1:5])),
		BatchID: string(v[5:headerLen]),
		Body:    bytes.Clone(v[headerLen:]),
	}, nil
}

// Ack deletes an acknowledged batch. Acknowledging a batch that is already
// gone is not an error (a resend after a crash).
func (o *Outbox) Ack(key []byte) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		_, err := o.remove(tx, key)
		return err
	})
}

func (o *Outbox) remove(tx *bolt.Tx, key []byte) (StoredBatch, error) {
	b := tx.Bucket(bucketBatches)
	v := b.Get(key)
	if v == nil {
		return StoredBatch{}, nil
	}
	sb, err := decodeStored(key, v)
	if err != nil {
		return StoredBatch{}, err
	}
	if err := b.Delete(key); err != nil {
		return StoredBatch{}, err
	}
	return sb, addCounters(tx, -int64(sb.Records), -int64(len(sb.Body)))
}

// Reject moves a batch the backend refused as a whole into the rejected
// bucket, so the queue moves on; it is kept there for support.
func (o *Outbox) Reject(key []byte, status int, reason string) error {
	return o.db.Update(func(tx *bolt.Tx) error {
		sb, err := o.remove(tx, key)
		if err != nil || sb.Key == nil {
			return err
		}
		return o.putRejected(tx, rejectedEntry{BatchID: sb.BatchID, Reason: reason, Status: status, Body: sb.Body})
	})
}

// Split replaces a batch by two new batches (new ids) with the first and the
// second half of its records, in its place in the order. A one-record batch
// cannot be split; Split reports false and leaves it.
func (o *Outbox) Split(key []byte) (bool, error) {
	split := false
	err := o.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBatches).Get(key)
		if v == nil {
			return nil
		}
		sb, err := decodeStored(key, v)
		if err != nil {
			return err
		}
		var batch struct {
			Records []json.RawMessage `json:"records"`
		}
		if err := json.Unmarshal(sb.Body, &batch); err != nil {
			return fmt.Errorf("decode batch %s: %w", sb.BatchID, err)
		}
		if len(batch.Records) < 2 {
			return nil
		}
		if _, err := o.remove(tx, key); err != nil {
			return err
		}
		half := len(batch.Records) / 2
		for i, part := range [][]json.RawMessage{batch.Records[:half], batch.Records[half:]} {
			var buf bytes.Buffer
			buf.WriteString(`{"batch_id":"`)
			buf.WriteString(o.newID())
			buf.WriteString(`","records":[`)
			for j, r := range part {
				if j > 0 {
					buf.WriteByte(',')
				}
				buf.Write(r)
			}
			buf.WriteString("]}")
			if err := o.putBatch(tx, append(bytes.Clone(key), byte(i)), buf.Bytes(), len(part)); err != nil {
				return err
			}
		}
		split = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("agent: split batch %x: %w", key, err)
	}
	return split, nil
}

// Stats returns the outbox's counters.
func (o *Outbox) Stats() (OutboxStats, error) {
	var s OutboxStats
	err := o.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		s.PendingRecords = int64(getUint(meta.Get(keyPendingRecords)))
		s.PendingBytes = int64(getUint(meta.Get(keyPendingBytes)))
		s.InitialLoadDone = meta.Get(keyInitialLoad) != nil
		s.Batches = tx.Bucket(bucketBatches).Stats().KeyN
		s.Rejected = tx.Bucket(bucketRejected).Stats().KeyN
		return nil
	})
	return s, err
}

// PendingBytes is the body bytes waiting in "batches"; it reads one key.
func (o *Outbox) PendingBytes() (int64, error) {
	var n int64
	err := o.db.View(func(tx *bolt.Tx) error {
		n = int64(getUint(tx.Bucket(bucketMeta).Get(keyPendingBytes)))
		return nil
	})
	return n, err
}

// FileSize is the size of the bbolt file in bytes (it grows, never shrinks).
func (o *Outbox) FileSize() int64 {
	var n int64
	_ = o.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

func addCounters(tx *bolt.Tx, records, size int64) error {
	meta := tx.Bucket(bucketMeta)
	for _, kv := range []struct {
		key   []byte
		delta int64
	}{{keyPendingRecords, records}, {keyPendingBytes, size}} {
		n := int64(getUint(meta.Get(kv.key))) + kv.delta
		if n < 0 {
			n = 0
		}
		if err := meta.Put(kv.key, putUint(uint64(n))); err != nil {
			return err
		}
	}
	return nil
}

func seqKey(seq uint64) []byte { return putUint(seq) }

func putUint(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func getUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
