// Package eventlog defines the account's event log («Список событий»): what an
// event is, the filters a user may apply, and the CSV export. Storage lives in
// backend/store; this package has no I/O besides writing CSV.
package eventlog

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/svyazka/svyazka/backend/apperr"
)

// Type names what happened. New capabilities add their own.
type Type string

// Event types.
const (
	TypeInstall             Type = "install"
	TypeUninstall           Type = "uninstall"
	TypeInstallForm         Type = "install_form"
	TypeTokenIssued         Type = "token_issued"
	TypeDatabaseConnected   Type = "database_connected"
	TypeDatabaseDisconnect  Type = "database_disconnected"
	TypeSyncStarted         Type = "sync_started"
	TypeSyncStopped         Type = "sync_stopped"
	TypeSubscriptionChanged Type = "subscription_changed"
	TypeSetup               Type = "setup"
	TypeSyncError           Type = "sync_error"
	// TypeSync is what the sync did that a manager should know: a contact
	// adopted, an inbound lead continued, a manual move undone, a move.
	TypeSync  Type = "sync"
	TypeError Type = "error"
)

// TypeLabels are the Russian names shown in the UI and the CSV, in menu order.
var TypeLabels = []struct {
	Type  Type
	Label string
}{
	{TypeInstall, "Установка виджета"},
	{TypeUninstall, "Отключение виджета"},
	{TypeInstallForm, "Данные установки"},
	{TypeTokenIssued, "Выдан токен"},
	{TypeDatabaseConnected, "База подключена"},
	{TypeDatabaseDisconnect, "База отключена"},
	{TypeSyncStarted, "Запуск синхронизации"},
	{TypeSyncStopped, "Остановка синхронизации"},
	{TypeSubscriptionChanged, "Подписка"},
	{TypeSetup, "Настройка"},
	{TypeSync, "Передача данных"},
	{TypeSyncError, "Ошибка передачи данных"},
	{TypeError, "Ошибка"},
}

// Label returns the Russian name of t, or t itself for an unknown type.
func (t Type) Label() string {
	for _, l := range TypeLabels {
		if l.Type == t {
			return l.Label
		}
	}
	return string(t)
}

// Known reports whether t is one of the types above.
func (t Type) Known() bool {
	for _, l := range TypeLabels {
		if l.Type == t {
			return true
		}
	}
	return false
}

// Severity grades an event.
type Severity string

// Severities, from least to most serious.
const (
	Info    Severity = "info"
	Warning Severity = "warning"
	Error   Severity = "error"
)

// SeverityLabels are the Russian names of the severities.
var SeverityLabels = map[Severity]string{Info: "Информация", Warning: "Предупреждение", Error: "Ошибка"}

// Event is one entry of an account's log.
type Event struct {
	ID         int64
	AccountID  int64
	DatabaseID *int64
	Type       Type
	Severity   Severity
	Message    string
	Details    map[string]any
	CreatedAt  time.Time
}

// Recorder appends events to the log.
type Recorder interface {
	Record(ctx context.Context, e Event) error
}

// Filter selects and orders one page of an account's events.
type Filter struct {
	AccountID  int64
	Types      []Type
	Severities []Severity
	DatabaseID *int64
	// Text matches what the user sees of an event, its message, as a
	// case-insensitive substring; the hidden details are never searched.
	Text    string
	From    *time.Time // inclusive
	To      *time.Time // exclusive
	Oldest  bool       // sort by date ascending; newest first by default
	Page    int        // 1-based
	PerPage int
}

// MaxPerPage bounds a page of the list; the CSV export ignores paging.
const MaxPerPage = 200

// MaxTextRunes bounds the text search, in characters.
const MaxTextRunes = 200

// filterParams are the query parameters ParseFilter reads.
var filterParams = []string{"type", "severity", "database_id", "q", "from", "to", "sort", "page", "per_page"}

// DefaultPerPage is the page size when none is asked.
const DefaultPerPage = 50

// ParseFilter builds a filter from query parameters (type, severity,
// database_id, q, from, to as YYYY-MM-DD in loc or RFC 3339, sort=asc|desc,
// page, per_page). Bad values, including a NUL byte or invalid UTF-8 in any
// of them and a text longer than MaxTextRunes, give an apperr.Invalid whose
// message names the parameter.
func ParseFilter(accountID int64, get func(string) []string, loc *time.Location) (Filter, error) {
	f := Filter{AccountID: accountID, Page: 1, PerPage: DefaultPerPage}
	bad := func(param, format string, args ...any) error {
		return apperr.New(apperr.Invalid, "Параметр %s: %s", param, fmt.Sprintf(format, args...))
	}
	// PostgreSQL rejects such text outright; checked first so no parser below
	// quotes it back and no query ever carries it.
	for _, param := range filterParams {
		for _, v := range get(param) {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				return Filter{}, bad(param, "недопустимые символы (нулевой байт или не UTF-8)")
			}
		}
	}
	for _, raw := range splitAll(get("type")) {
		t := Type(raw)
		if !t.Known() {
			return Filter{}, bad("type", "неизвестный тип события %q", raw)
		}
		f.Types = append(f.Types, t)
	}
	for _, raw := range splitAll(get("severity")) {
		s := Severity(raw)
		if _, ok := SeverityLabels[s]; !ok {
			return Filter{}, bad("severity", "неизвестная важность %q", raw)
		}
		f.Severities = append(f.Severities, s)
	}
	if raw := first(get("database_id")); raw != "" {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id <= 0 {
			return Filter{}, bad("database_id", "ожидается номер базы")
		}
		f.DatabaseID = &id
	}
	f.Text = strings.TrimSpace(first(get("q")))
	if utf8.RuneCountInString(f.Text) > MaxTextRunes {
		return Filter{}, bad("q", "не длиннее %d символов", MaxTextRunes)
	}
	var err error
	if f.From, err = parseTime(first(get("from")), loc, false); err != nil {
		return Filter{}, bad("from", "%v", err)
	}
	if f.To, err = parseTime(first(get("to")), loc, true); err != nil {
		return Filter{}, bad("to", "%v", err)
	}
	if f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		return Filter{}, bad("from", "начало периода должно быть раньше конца")
	}
	switch first(get("sort")) {
	case "", "desc":
	case "asc":
		f.Oldest = true
	default:
		return Filter{}, bad("sort", "ожидается asc или desc")
	}
	if f.Page, err = parsePositive(first(get("page")), 1, 1_000_000); err != nil {
		return Filter{}, bad("page", "%v", err)
	}
	if f.PerPage, err = parsePositive(first(get("per_page")), DefaultPerPage, MaxPerPage); err != nil {
		return Filter{}, bad("per_page", "%v", err)
	}
	return f, nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return strings.TrimSpace(v[0])
}

// splitAll accepts both repeated parameters and comma-separated lists.
func splitAll(values []string) []string {
	var out []string
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// parseTime reads a date (a whole day in loc; as an upper bound it means the
// end of that day) or an RFC 3339 instant.
func parseTime(raw string, loc *time.Location, upper bool) (*time.Time, error) {
	if raw == "" {
		return nil, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", raw, loc); err == nil {
		if upper {
			t = t.AddDate(0, 0, 1)
		}
		t = t.UTC()
		return &t, nil
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		return nil, fmt.Errorf("ожидается дата ГГГГ-ММ-ДД")
	}
	t = t.UTC()
	return &t, nil
}

func parsePositive(raw string, def, max int) (int, error) {
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("ожидается число от 1 до %d", max)
	}
	return n, nil
}

// Final lines of an export. Every file ends with exactly one of them, so a
// user (and the settings page) can tell a complete file from a cut one.
const (
	CSVCompleteLine  = "Выгрузка завершена, файл полный. Событий: %d."
	CSVTruncatedLine = "ВНИМАНИЕ: файл неполный — достигнут предел одной выгрузки (%d событий). Сузьте период или фильтры и выгрузите остальное отдельно."
	CSVFailedLine    = "ОШИБКА: выгрузка прервана, файл неполный. Повторите выгрузку."
)

// CSVWriter writes an export for Excel: a UTF-8 byte-order mark, a header
// row, semicolon separators, dates in the account's zone, cells defused
// against formula injection, and one final line (Complete, Truncated or
// Failed). Rows are buffered; Flush pushes them to the underlying writer.
type CSVWriter struct {
	csv   *csv.Writer
	loc   *time.Location
	names map[int64]string
	rows  int
}

// NewCSVWriter writes the BOM and the header row to w. It returns w's error.
func NewCSVWriter(w io.Writer, loc *time.Location, databaseNames map[int64]string) (*CSVWriter, error) {
	if _, err := io.WriteString(w, "\ufeff"); err != nil {
		return nil, err
	}
	cw := &CSVWriter{csv: csv.NewWriter(w), loc: loc, names: databaseNames}
	cw.csv.Comma = ';'
	if err := cw.csv.Write([]string{"Дата", "Тип", "Важность", "База", "Сообщение"}); err != nil {
		return nil, err
	}
	return cw, nil
}

// Write appends one row per event.
func (cw *CSVWriter) Write(events []Event) error {
	for _, e := range events {
		db := ""
		if e.DatabaseID != nil {
			db = cw.names[*e.DatabaseID]
			if db == "" {
				db = "#" + strconv.FormatInt(*e.DatabaseID, 10)
			}
		}
		if err := cw.csv.Write([]string{
			e.CreatedAt.In(cw.loc).Format("02.01.2006 15:04:05"),
			e.Type.Label(),
			SeverityLabels[e.Severity],
			csvSafe(db),
			csvSafe(e.Message),
		}); err != nil {
			return err
		}
		cw.rows++
	}
	return nil
}

// Rows is the number of event rows written so far.
func (cw *CSVWriter) Rows() int { return cw.rows }

// Flush writes buffered rows to the underlying writer and returns its error.
func (cw *CSVWriter) Flush() error {
	cw.csv.Flush()
	return cw.csv.Error()
}

// Complete ends a full export with CSVCompleteLine and flushes.
func (cw *CSVWriter) Complete() error { return cw.final(fmt.Sprintf(CSVCompleteLine, cw.rows)) }

// Truncated ends an export cut at its row limit with CSVTruncatedLine and flushes.
func (cw *CSVWriter) Truncated() error { return cw.final(fmt.Sprintf(CSVTruncatedLine, cw.rows)) }

// Failed ends an interrupted export with CSVFailedLine and flushes.
func (cw *CSVWriter) Failed() error { return cw.final(CSVFailedLine) }

func (cw *CSVWriter) final(line string) error {
	if err := cw.csv.Write([]string{line}); err != nil {
		return err
	}
	return cw.Flush()
}

// csvSafe defuses spreadsheet formula injection: a cell starting with = + - @
// would be evaluated by Excel, and messages and database names may quote
// source data.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
