package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

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

// eventsCSV exports every event matching the filters (paging ignored).
func (a *appRoutes) eventsCSV(c echo.Context) error {
	ctx := c.Request().Context()
	acc, f, names, err := a.eventQuery(c)
	if err != nil {
		return err
	}
	f.Page, f.PerPage = 0, eventlog.MaxPerPage
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="svyazka-events-%s.csv"`, a.cfg.Now().In(acc.Location()).Format("2006-01-02")))
	c.Response().WriteHeader(http.StatusOK)
	return eventlog.WriteCSV(c.Response(), acc.Location(), names, func() ([]eventlog.Event, error) {
		f.Page++
		evs, _, err := a.cfg.App.ListEvents(ctx, f)
		return evs, err
	})
}
