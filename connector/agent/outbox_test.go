package agent

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/connector/protocol"
)

func records(from, n int) []protocol.Record {
	rs := make([]protocol.Record, n)
	for i := range rs {
		id := strconv.Itoa(from + i)
		rs[i] = protocol.Record{Kind: protocol.KindReception, SourceID: id, Version: int64(from + i), Data: json.RawMessage(`{"id":` + id + `}`)}
	}
	return rs
}

// drain reads every batch in order, acknowledging each.
func drain(t *testing.T, o *Outbox) []protocol.Batch {
	t.Helper()
	var out []protocol.Batch
	for {
		sb, err := o.Head()
		if err == ErrEmpty {
			return out
		}
		require.NoError(t, err)
		var b protocol.Batch
		require.NoError(t, json.Unmarshal(sb.Body, &b))
		require.Equal(t, sb.BatchID, b.BatchID)
		require.Len(t, b.Records, sb.Records)
		out = append(out, b)
		require.NoError(t, o.Ack(sb.Key))
	}
}

func openTest(t *testing.T, path string) *Outbox {
	t.Helper()
	o, err := OpenOutbox(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = o.Close() })
	return o
}

func TestAppendGroupsByCount(t *testing.T) {
	t.Parallel()
	o := openTest(t, filepath.Join(t.TempDir(), "o.db"))
	res, err := o.Append(records(1, 1200), []byte("c1"), false)
	require.NoError(t, err)
	require.Equal(t, AppendResult{Batches: 3, Records: 1200}, res)
	s, err := o.Stats()
	require.NoError(t, err)
	require.Equal(t, int64(1200), s.PendingRecords)
	require.False(t, s.InitialLoadDone)
	batches := drain(t, o)
	var sizes []int
	var all []protocol.Record
	for _, b := range batches {
		sizes = append(sizes, len(b.Records))
		all = append(all, b.Records...)
	}
	require.Equal(t, []int{500, 500, 200}, sizes)
	if d := cmp.Diff(records(1, 1200), all); d != "" {
		t.Fatalf("records (-want +got):\n%s", d)
	}
	s, err = o.Stats()
	require.NoError(t, err)
	require.Equal(t, OutboxStats{}, s)
}

func TestAppendGroupsByBytes(t *testing.T) {
	t.Parallel()
	o := openTest(t, filepath.Join(t.TempDir(), "o.db"))
	o.maxBytes = 1000
	_, err := o.Append(records(1, 100), nil, true)
	require.NoError(t, err)
	n := 0
	for _, b := range drain(t, o) {
		body, err := json.Marshal(b)
		require.NoError(t, err)
		require.LessOrEqual(t, len(body), 1000)
		n += len(b.Records)
	}
	require.Equal(t, 100, n)
}

func TestPageAndCursorAndIDsSurviveReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "o.db")
	o, err := OpenOutbox(path)
	require.NoError(t, err)
	_, err = o.Append(records(1, 10), []byte("cursor-1"), false)
	require.NoError(t, err)
	_, err = o.Append(nil, []byte("cursor-2"), true)
	require.NoError(t, err)
	head, err := o.Head()
	require.NoError(t, err)
	require.NoError(t, o.Close())

	o = openTest(t, path)
	cur, err := o.Cursor()
	require.NoError(t, err)
	require.Equal(t, "cursor-2", string(cur))
	again, err := o.Head()
	require.NoError(t, err)
	require.Equal(t, head, again)
	s, err := o.Stats()
	require.NoError(t, err)
	require.True(t, s.InitialLoadDone)
	require.Equal(t, int64(len(head.Body)), s.PendingBytes)
}

func TestSplitKeepsOrder(t *testing.T) {
	t.Parallel()
	o := openTest(t, filepath.Join(t.TempDir(), "o.db"))
	_, err := o.Append(records(1, 9), nil, false)
	require.NoError(t, err)
	_, err = o.Append(records(10, 3), nil, false)
	require.NoError(t, err)
	head, err := o.Head()
	require.NoError(t, err)
	ok, err := o.Split(head.Key)
	require.NoError(t, err)
	require.True(t, ok)
	// Split the new head again: halves of halves stay ahead of batch 2.
	h2, err := o.Head()
	require.NoError(t, err)
	require.NotEqual(t, head.BatchID, h2.BatchID)
	ok, err = o.Split(h2.Key)
	require.NoError(t, err)
	require.True(t, ok)
	var all []protocol.Record
	var sizes []int
	for _, b := range drain(t, o) {
		all = append(all, b.Records...)
		sizes = append(sizes, len(b.Records))
	}
	require.Equal(t, []int{2, 2, 5, 3}, sizes)
	if d := cmp.Diff(records(1, 12), all); d != "" {
		t.Fatalf("records (-want +got):\n%s", d)
	}
	// A one-record batch cannot be split.
	_, err = o.Append(records(1, 1), nil, false)
	require.NoError(t, err)
	one, err := o.Head()
	require.NoError(t, err)
	ok, err = o.Split(one.Key)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestRejectAndOversizeRecords(t *testing.T) {
	t.Parallel()
	o := openTest(t, filepath.Join(t.TempDir(), "o.db"))
	o.maxBytes = 500
	rs := records(1, 3)
	rs[1].Data = json.RawMessage(`{"note":"` + strings.Repeat("x", 600) + `"}`)
	rs = append(rs, protocol.Record{Kind: protocol.KindPatient, SourceID: "bad", Data: json.RawMessage(`{not json`)})
	res, err := o.Append(rs, nil, false)
	require.NoError(t, err)
	require.Equal(t, AppendResult{Batches: 1, Records: 2, Rejected: 2}, res)
	head, err := o.Head()
	require.NoError(t, err)
	require.NoError(t, o.Reject(head.Key, 400, "malformed"))
	s, err := o.Stats()
	require.NoError(t, err)
	require.Equal(t, OutboxStats{Rejected: 3}, s)
	_, err = o.Head()
	require.ErrorIs(t, err, ErrEmpty)
}
