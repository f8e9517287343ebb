package ingest_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/ingest"
	"github.com/svyazka/svyazka/connector/protocol"
)

const batchID = "6f1c1e62-4a8e-4e47-9a34-5d0d3c2c9b10"

func reception(patient, start string) json.RawMessage {
	return json.RawMessage(`{"patient_id":"` + patient + `","plan_start":"` + start + `","plan_end":"2026-12-01T10:30:00"}`)
}

func rec(kind protocol.Kind, id string, version int64, data string) protocol.Record {
	return protocol.Record{Kind: kind, SourceID: id, Version: version, Data: json.RawMessage(data)}
}

func TestCheckBatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		batch protocol.Batch
		err   string
	}{
		{"ErrNoBatchID", protocol.Batch{Records: []protocol.Record{rec(protocol.KindBranch, "1", 1, `{"name":"Центр"}`)}}, "batch_id"},
		{"ErrBatchIDNotUUID", protocol.Batch{BatchID: "42", Records: []protocol.Record{rec(protocol.KindBranch, "1", 1, `{"name":"Центр"}`)}}, "batch_id"},
		{"ErrUpperCaseUUID", protocol.Batch{BatchID: strings.ToUpper(batchID), Records: []protocol.Record{rec(protocol.KindBranch, "1", 1, `{"name":"Центр"}`)}}, "batch_id"},
		{"ErrEmpty", protocol.Batch{BatchID: batchID}, "1 to 500"},
		{"ErrTooMany", protocol.Batch{BatchID: batchID, Records: make([]protocol.Record, protocol.MaxRecordsPerBatch+1)}, "1 to 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ingest.Check(tt.batch)
			require.ErrorIs(t, err, ingest.ErrBatch)
			require.ErrorContains(t, err, tt.err)
		})
	}
}

func TestCheckRecords(t *testing.T) {
	t.Parallel()
	good := rec(protocol.KindReception, "501", 10, string(reception("77", "2026-12-01T10:00:00")))
	tests := []struct {
		name   string
		record protocol.Record
		err    string // "" = accepted
	}{
		{"OK", good, ""},
		{"OKDeletedWithoutData", protocol.Record{Kind: protocol.KindReception, SourceID: "9", Version: 3, Deleted: true}, ""},
		{"ErrUnknownKind", rec("invoice", "1", 1, `{}`), "unknown kind"},
		{"ErrSourceIDLetters", rec(protocol.KindReception, "5a", 1, string(reception("77", "2026-12-01T10:00:00"))), "source_id"},
		{"ErrSourceIDTooLong", rec(protocol.KindReception, strings.Repeat("9", 20), 1, string(reception("77", "2026-12-01T10:00:00"))), "source_id"},
		{"ErrZeroVersion", rec(protocol.KindReception, "1", 0, string(reception("77", "2026-12-01T10:00:00"))), "version"},
		{"ErrNoData", protocol.Record{Kind: protocol.KindReception, SourceID: "1", Version: 1}, "data is required"},
		{"ErrUnknownField", rec(protocol.KindBranch, "1", 1, `{"name":"Центр","owner":"x"}`), "owner"},
		{"ErrBadTime", rec(protocol.KindReception, "1", 1, string(reception("77", "01.12.2026 10:00"))), "plan_start"},
		{"ErrPatientIDMissing", rec(protocol.KindReception, "1", 1, `{"plan_start":"2026-12-01T10:00:00"}`), "patient_id"},
		{"ErrNUL", rec(protocol.KindBranch, "1", 1, `{"name":"Цен\u0000тр"}`), "NUL"},
		{"ErrNotJSONObject", rec(protocol.KindBranch, "1", 1, `[1]`), "branch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := ingest.Check(protocol.Batch{BatchID: batchID, Records: []protocol.Record{good, tt.record}})
			require.NoError(t, err, "a bad record never refuses the batch")
			if tt.err == "" {
				require.Empty(t, out.Errors)
				return
			}
			require.Len(t, out.Records, 1, "the good record of the batch is kept")
			require.Len(t, out.Errors, 1)
			require.Equal(t, 1, out.Errors[0].Index)
			require.Contains(t, out.Errors[0].Message, tt.err)
		})
	}
}

func TestCanonicalDataAndHash(t *testing.T) {
	t.Parallel()
	a := rec(protocol.KindBranch, "1", 1, `{ "name" : "Центр" }`)
	b := rec(protocol.KindBranch, "1", 7, `{"name":"Центр"}`)
	c := rec(protocol.KindBranch, "1", 8, `{"name":"Север"}`)
	out, err := ingest.Check(protocol.Batch{BatchID: batchID, Records: []protocol.Record{a}})
	require.NoError(t, err)
	out2, err := ingest.Check(protocol.Batch{BatchID: batchID, Records: []protocol.Record{b}})
	require.NoError(t, err)
	out3, err := ingest.Check(protocol.Batch{BatchID: batchID, Records: []protocol.Record{c}})
	require.NoError(t, err)
	require.Equal(t, `{"name":"Центр"}`, string(out.Records[0].Data), "stored canonical")
	require.Equal(t, out.Records[0].Hash, out2.Records[0].Hash, "same content, any version or spacing: same hash")
	require.NotEqual(t, out.Records[0].Hash, out3.Records[0].Hash)
	del := protocol.Record{Kind: protocol.KindBranch, SourceID: "1", Version: 9, Deleted: true}
	out4, err := ingest.Check(protocol.Batch{BatchID: batchID, Records: []protocol.Record{del}})
	require.NoError(t, err)
	require.NotEqual(t, out.Records[0].Hash, out4.Records[0].Hash, "a deletion is a change")
}

func TestDuplicateKeysCollapseToNewest(t *testing.T) {
	t.Parallel()
	out, err := ingest.Check(protocol.Batch{BatchID: batchID, Records: []protocol.Record{
		rec(protocol.KindBranch, "1", 5, `{"name":"Пять"}`),
		rec(protocol.KindBranch, "1", 9, `{"name":"Девять"}`),
		rec(protocol.KindBranch, "1", 7, `{"name":"Семь"}`),
		rec(protocol.KindChair, "1", 1, `{"name":"Кресло"}`),
	}})
	require.NoError(t, err)
	require.Len(t, out.Records, 2, "one branch 1 and one chair 1")
	require.EqualValues(t, 9, out.Records[0].Version)
	require.Contains(t, string(out.Records[0].Data), "Девять")
	require.Equal(t, 4, out.Total)
}
