package agenttest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Source is a fake agent.Source over an in-memory change log. The cursor is
// the 8-byte big-endian position in the log.
type Source struct {
	mu       sync.Mutex
	log      []protocol.Record
	pageSize int
	readErrs []error
	checkErr error
	version  string
	reads    int
	closed   bool
	// onRead runs before each Read answers, with the page it is about to return.
	onRead func(n int)
}

// NewSource returns a source whose log holds n generated patient records,
// served pageSize at a time.
func NewSource(n, pageSize int) *Source {
	s := &Source{pageSize: pageSize, version: "IDENT 1.0 (fake)"}
	s.Add(n)
	return s
}

// Add appends n generated patient records to the log (new rows).
func (s *Source) Add(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		id := len(s.log) + 1
		data, _ := json.Marshal(map[string]any{"id": id, "name": "Пациент " + strconv.Itoa(id), "phone": "+7 900 000-00-00"})
		s.log = append(s.log, protocol.Record{Kind: protocol.KindPatient, SourceID: strconv.Itoa(id), Version: int64(id), Data: data})
	}
}

// AddRecords appends records to the log.
func (s *Source) AddRecords(rs ...protocol.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, rs...)
}

// Len is the number of records in the log.
func (s *Source) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// Records returns the log.
func (s *Source) Records() []protocol.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]protocol.Record(nil), s.log...)
}

// FailReads makes the next Reads fail with errs, in order.
func (s *Source) FailReads(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readErrs = append(s.readErrs, errs...)
}

// SetCheckErr makes Check fail with err (nil: succeed).
func (s *Source) SetCheckErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkErr = err
}

// OnRead sets a hook called with the number of the Read (1, 2, ...).
func (s *Source) OnRead(fn func(n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRead = fn
}

// Check implements agent.Source.
func (s *Source) Check(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checkErr != nil {
		return "", s.checkErr
	}
	return s.version, nil
}

// Read implements agent.Source.
func (s *Source) Read(ctx context.Context, cursor []byte) ([]protocol.Record, []byte, bool, error) {
	s.mu.Lock()
	s.reads++
	n, hook := s.reads, s.onRead
	if s.closed {
		s.mu.Unlock()
		return nil, nil, false, errors.New("fake source: closed")
	}
	if len(s.readErrs) > 0 {
		err := s.readErrs[0]
		s.readErrs = s.readErrs[1:]
		s.mu.Unlock()
		return nil, nil, false, err
	}
	pos := 0
	if len(cursor) == 8 {
		pos = int(binary.BigEndian.Uint64(cursor))
	} else if cursor != nil {
		s.mu.Unlock()
		return nil, nil, false, fmt.Errorf("fake source: bad cursor %x", cursor)
	}
	end := min(pos+s.pageSize, len(s.log))
	page := append([]protocol.Record(nil), s.log[pos:end]...)
	more := end < len(s.log)
	s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	next := make([]byte, 8)
	binary.BigEndian.PutUint64(next, uint64(end))
	return page, next, more, nil
}

// Close implements agent.Source.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
