package eventlog_test

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/eventlog"
)

var msk = time.FixedZone("MSK", 3*3600)

func params(kv ...string) func(string) []string {
	m := map[string][]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = append(m[kv[i]], kv[i+1])
	}
	return func(k string) []string { return m[k] }
}

func TestParseFilter(t *testing.T) {
	t.Parallel()
	f, err := eventlog.ParseFilter(7, params(), msk)
	require.NoError(t, err)
	require.Equal(t, eventlog.Filter{AccountID: 7, Page: 1, PerPage: eventlog.DefaultPerPage}, f)

	f, err = eventlog.ParseFilter(7, params("type", "install,sync_error", "type", "error", "severity", "error",
		"database_id", "3", "q", "  телефон ", "from", "2026-11-01", "to", "2026-11-01", "sort", "asc", "page", "2", "per_page", "10"), msk)
	require.NoError(t, err)
	require.Equal(t, []eventlog.Type{eventlog.TypeInstall, eventlog.TypeSyncError, eventlog.TypeError}, f.Types)
	require.Equal(t, []eventlog.Severity{eventlog.Error}, f.Severities)
	require.EqualValues(t, 3, *f.DatabaseID)
	require.Equal(t, "телефон", f.Text)
	require.Equal(t, time.Date(2026, 10, 31, 21, 0, 0, 0, time.UTC), *f.From, "a date is a whole day in the account's zone")
	require.Equal(t, time.Date(2026, 11, 1, 21, 0, 0, 0, time.UTC), *f.To, "to includes that whole day")
	require.True(t, f.Oldest)
	require.Equal(t, 2, f.Page)
	require.Equal(t, 10, f.PerPage)

	for name, tc := range map[string]struct {
		params func(string) []string
		param  string
	}{
		"UnknownType":     {params("type", "drop_table"), "type"},
		"UnknownSeverity": {params("severity", "fatal"), "severity"},
		"BadDatabase":     {params("database_id", "-1"), "database_id"},
		"BadDate":         {params("from", "01.11.2026"), "from"},
		"EmptyRange":      {params("from", "2026-11-02", "to", "2026-11-01"), "from"},
		"BadSort":         {params("sort", "random"), "sort"},
		"PageZero":        {params("page", "0"), "page"},
		"PerPageTooBig":   {params("per_page", "10000"), "per_page"},
		"LongText":        {params("q", strings.Repeat("я", 201)), "q"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eventlog.ParseFilter(7, tc.params, msk)
			require.Equal(t, apperr.Invalid, apperr.CodeOf(err))
			require.Contains(t, apperr.MessageOf(err), "Параметр "+tc.param+":")
		})
	}
}

func TestWriteCSV(t *testing.T) {
	t.Parallel()
	db := int64(4)
	batches := [][]eventlog.Event{
		{{Type: eventlog.TypeInstall, Severity: eventlog.Info, Message: "Виджет установлен; всё хорошо", CreatedAt: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}},
		{{Type: eventlog.TypeSyncError, Severity: eventlog.Error, DatabaseID: &db, Message: "=HYPERLINK(\"http://evil\")", CreatedAt: time.Date(2026, 11, 2, 21, 30, 0, 0, time.UTC)}},
	}
	var buf bytes.Buffer
	i := 0
	err := eventlog.WriteCSV(&buf, msk, map[int64]string{4: "Филиал на Ленина"}, func() ([]eventlog.Event, error) {
		if i == len(batches) {
			return nil, nil
		}
		i++
		return batches[i-1], nil
	})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(buf.String(), "\ufeff"), "Excel needs the BOM to read UTF-8")
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(buf.String(), "\ufeff")))
	r.Comma = ';'
	rows, err := r.ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{
		{"Дата", "Тип", "Важность", "База", "Сообщение"},
		{"01.11.2026 12:00:00", "Установка виджета", "Информация", "", "Виджет установлен; всё хорошо"},
		{"03.11.2026 00:30:00", "Ошибка передачи данных", "Ошибка", "Филиал на Ленина", "'=HYPERLINK(\"http://evil\")"},
	}, rows)
}
