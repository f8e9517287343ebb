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

	f, err = eventlog.ParseFilter(7, params("q", strings.Repeat("я", eventlog.MaxTextRunes)), msk)
	require.NoError(t, err, "the bound counts characters, not bytes")
	require.Len(t, []rune(f.Text), eventlog.MaxTextRunes)

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
		"NULInText":       {params("q", "Иван\x00ов"), "q"},
		"BadUTF8InText":   {params("q", "Иван\xffов"), "q"},
		"NULInType":       {params("type", "install\x00"), "type"},
		"BadUTF8InType":   {params("type", "\xc3\x28"), "type"},
		"NULInSeverity":   {params("severity", "\x00"), "severity"},
		"BadUTF8Severity": {params("severity", "err\xfe"), "severity"},
		"NULInDatabase":   {params("database_id", "3\x00"), "database_id"},
		"BadUTF8Database": {params("database_id", "\xff"), "database_id"},
		"NULInFrom":       {params("from", "2026-11-01\x00"), "from"},
		"BadUTF8InTo":     {params("to", "2026-11-01\xff"), "to"},
		"NULInSort":       {params("sort", "asc\x00"), "sort"},
		"BadUTF8InPage":   {params("page", "\xff1"), "page"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eventlog.ParseFilter(7, tc.params, msk)
			require.Equal(t, apperr.Invalid, apperr.CodeOf(err))
			require.Contains(t, apperr.MessageOf(err), "Параметр "+tc.param+":")
		})
	}
}

func readCSV(t *testing.T, out string) [][]string {
	t.Helper()
	require.True(t, strings.HasPrefix(out, "\ufeff"), "Excel needs the BOM to read UTF-8")
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "\ufeff")))
	r.Comma = ';'
	r.FieldsPerRecord = -1 // the final line is one cell
	rows, err := r.ReadAll()
	require.NoError(t, err)
	return rows
}

func TestCSVWriter(t *testing.T) {
	t.Parallel()
	db := int64(4)
	batches := [][]eventlog.Event{
		{{Type: eventlog.TypeInstall, Severity: eventlog.Info, Message: "Виджет установлен; всё хорошо", CreatedAt: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}},
		{{Type: eventlog.TypeSyncError, Severity: eventlog.Error, DatabaseID: &db, Message: "=HYPERLINK(\"http://evil\")", CreatedAt: time.Date(2026, 11, 2, 21, 30, 0, 0, time.UTC)}},
		{{Type: eventlog.TypeSyncError, Severity: eventlog.Error, DatabaseID: new(int64(5)), Message: "ok", CreatedAt: time.Date(2026, 11, 2, 21, 30, 0, 0, time.UTC)}},
	}
	header := []string{"Дата", "Тип", "Важность", "База", "Сообщение"}
	rows := [][]string{
		{"01.11.2026 12:00:00", "Установка виджета", "Информация", "", "Виджет установлен; всё хорошо"},
		{"03.11.2026 00:30:00", "Ошибка передачи данных", "Ошибка", "Филиал на Ленина", "'=HYPERLINK(\"http://evil\")"},
		{"03.11.2026 00:30:00", "Ошибка передачи данных", "Ошибка", "'+7 (филиал)", "ok"},
	}
	for name, tc := range map[string]struct {
		end  func(*eventlog.CSVWriter) error
		last string
	}{
		"Complete":  {(*eventlog.CSVWriter).Complete, "Выгрузка завершена, файл полный. Событий: 3."},
		"Truncated": {(*eventlog.CSVWriter).Truncated, "ВНИМАНИЕ: файл неполный — достигнут предел одной выгрузки (3 событий). Сузьте период или фильтры и выгрузите остальное отдельно."},
		"Failed":    {(*eventlog.CSVWriter).Failed, eventlog.CSVFailedLine},
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := eventlog.NewCSVWriter(&buf, msk, map[int64]string{4: "Филиал на Ленина", 5: "+7 (филиал)"})
			require.NoError(t, err)
			for _, b := range batches {
				require.NoError(t, w.Write(b))
			}
			require.Equal(t, 3, w.Rows())
			require.NoError(t, tc.end(w))
			want := append([][]string{header}, rows...)
			want = append(want, []string{tc.last})
			require.Equal(t, want, readCSV(t, buf.String()))
		})
	}
}
