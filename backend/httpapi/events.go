package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
)

type eventJSON struct {
	ID            int64     `json:"id"`
	CreatedAt     time.Time `json:"created_at"`
	Type          string    `json:"type"`
	TypeLabel     string    `json:"type_label"`
	Severity      string    `json:"severity"`
	SeverityLabel string    `json:"severity_label"`
	DatabaseID    *int64    `json:"database_id"`
	DatabaseName  string    `json:"database_name"`
	Message       string    `json:"message"`
}

func (a *appRoutes) databaseNames(ctx context.Context, accountID int64) (map[int64]string, error) {
	dbs, err := a.cfg.App.ListDatabases(ctx, accountID)
	if err != nil {
		return nil, err
	}
	names := make(map[int64]string, len(dbs))
	for _, d := range dbs {
		names[d.ID] = d.Name
	}
	return names, nil
}

// eventQuery is what both event routes start with: the session's account,
// the filter from the query string, and the names of its databases.
func (a *appRoutes) eventQuery(c echo.Context) (store.Account, eventlog.Filter, map[int64]string, error) {
	acc, err := a.account(c)
	if err != nil {
		return store.Account{}, eventlog.Filter{}, nil, err
	}
	f, err := eventlog.ParseFilter(acc.ID, func(k string) []string { return c.QueryParams()[k] }, acc.Location())
	if err != nil {
		return store.Account{}, eventlog.Filter{}, nil, err
	}
	names, err := a.databaseNames(c.Request().Context(), acc.ID)
	return acc, f, names, err
}

func (a *appRoutes) events(c echo.Context) error {
	_, f, names, err := a.eventQuery(c)
	if err != nil {
		return err
	}
	evs, total, err := a.cfg.App.ListEvents(c.Request().Context(), f)
	if err != nil {
		return err
	}
	items := make([]eventJSON, len(evs))
	for i, e := range evs {
		items[i] = eventJSON{ID: e.ID, CreatedAt: e.CreatedAt, Type: string(e.Type), TypeLabel: e.Type.Label(),
			Severity: string(e.Severity), SeverityLabel: eventlog.SeverityLabels[e.Severity], DatabaseID: e.DatabaseID, Message: e.Message}
		if e.DatabaseID != nil {
			items[i].DatabaseName = names[*e.DatabaseID]
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items, "total": total, "page": f.Page, "per_page": f.PerPage})
}

// Export bounds. An export holds one database connection and one snapshot for
// its whole run, so it gets its own deadline instead of the general
// per-request one, a row cap, and a small number of slots.
const (
	exportTimeout     = 10 * time.Minute
	exportMaxRows     = 1_000_000
	exportsPerAccount = 1
	exportsGlobal     = 4
	exportRetryAfter  = "30" // seconds, for a refused export
)

// exportGate counts running exports per account and in total.
type exportGate struct {
	mu         sync.Mutex
	perAccount int
	global     int
	total      int
	running    map[int64]int
}

func newExportGate(perAccount, global int) *exportGate {
	return &exportGate{perAccount: perAccount, global: global, running: map[int64]int{}}
}

// acquire takes a slot for the account or returns a rate_limited error saying
// which bound was hit; release must be called exactly once.
func (g *exportGate) acquire(accountID int64) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running[accountID] >= g.perAccount {
		return nil, apperr.New(apperr.RateLimited, "Выгрузка событий этого аккаунта уже идёт. Дождитесь, пока файл скачается, и повторите.")
	}
	if g.total >= g.global {
		return nil, apperr.New(apperr.RateLimited, "Сейчас выполняется много выгрузок. Повторите через минуту.")
	}
	g.running[accountID]++
	g.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.total--
			if g.running[accountID]--; g.running[accountID] <= 0 {
				delete(g.running, accountID)
			}
		})
	}, nil
}

// exportContext frees the export from the general request deadline (set by
// middleware for ordinary requests) and bounds it by its own. A client that
// disconnects still cancels it: before the general deadline through the
// request's context, after it through the failed writes.
func exportContext(req context.Context, bound time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req), bound)
	stop := context.AfterFunc(req, func() {
		if !errors.Is(req.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	return ctx, func() { stop(); cancel() }
}

// eventsCSV exports every event matching the filters (paging ignored) in the
// chosen order, streamed from one snapshot. Bad filters and a busy export
// slot are answered with an error body before any CSV; once the header is
// sent, the file ends with the completed, truncated or failed line.
func (a *appRoutes) eventsCSV(c echo.Context) error {
	acc, f, names, err := a.eventQuery(c)
	if err != nil {
		return err
	}
	release, err := a.exports.acquire(acc.ID)
	if err != nil {
		c.Response().Header().Set("Retry-After", exportRetryAfter)
		return err
	}
	defer release()

	ctx, cancel := exportContext(c.Request().Context(), exportTimeout)
	defer cancel()
	// The server's read and write timeouts are for ordinary requests too.
	rc := http.NewResponseController(c.Response())
	deadline := time.Now().Add(exportTimeout + time.Minute)
	_ = rc.SetWriteDeadline(deadline)
	_ = rc.SetReadDeadline(deadline)

	start := time.Now()
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="svyazka-events-%s.csv"`, a.cfg.Now().In(acc.Location()).Format("2006-01-02")))
	h.Set("Cache-Control", "no-store")
	c.Response().WriteHeader(http.StatusOK)

	cw, writeErr := eventlog.NewCSVWriter(c.Response(), acc.Location(), names)
	more := false
	if writeErr == nil {
		more, err = a.cfg.App.ExportEvents(ctx, f, exportMaxRows, func(batch []eventlog.Event) error {
			if writeErr = cw.Write(batch); writeErr == nil {
				writeErr = cw.Flush()
			}
			if writeErr == nil {
				writeErr = rc.Flush()
			}
			return writeErr
		})
	}
	// Only counts and the account id are logged: filters may hold patient names.
	attrs := []any{"request_id", h.Get(echo.HeaderXRequestID), "account_id", acc.ID,
		"rows", rowsOf(cw), "duration_ms", time.Since(start).Milliseconds()}
	switch {
	case writeErr != nil:
		a.log.WarnContext(ctx, "events export: client stopped reading", append(attrs, "err", writeErr)...)
		return nil
	case err != nil:
		a.log.ErrorContext(ctx, "events export failed, file marked incomplete", append(attrs, "err", err)...)
		writeErr = cw.Failed()
	case more:
		a.log.WarnContext(ctx, "events export hit the row limit", append(attrs, "limit", exportMaxRows)...)
		writeErr = cw.Truncated()
	default:
		a.log.InfoContext(ctx, "events export done", attrs...)
		writeErr = cw.Complete()
	}
	if writeErr != nil {
		a.log.WarnContext(ctx, "events export: write final line", append(attrs, "err", writeErr)...)
	}
	return nil
}

func rowsOf(cw *eventlog.CSVWriter) int {
	if cw == nil {
		return 0
	}
	return cw.Rows()
}
