package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// The sync switch (ЗАПУСТИТЬ / ОСТАНОВИТЬ). Both routes need a widget
// session of an amoCRM admin (403 otherwise) and answer with the standard
// error body on failure.
//
// POST /api/app/v1/sync/start {"since": "2025-01-01", "database_ids": [1, 2]} → 200 {"sync_state": "running"}
//
//	since is the clinic-local date the import starts from ("" or absent:
//	the stored one; every appointment on a first start); database_ids absent
//	means every database. 409 conflict names every missing precondition
//	(«Синхронизацию нельзя запустить: Подписка не активна; …») or says it
//	runs already; 400 for a bad date; 404 for a database of another account.
//
// POST /api/app/v1/sync/stop → 200 {"sync_state": "stopped"}; 409 when stopped already.
//
// Where the sync stands is in GET /api/app/v1/state under "sync" (its
// state, last start, the import's done/total with rate and time left, the
// lag, the queue and each database's last change received and written).

type syncStartRequest struct {
	Since       string  `json:"since"`
	DatabaseIDs []int64 `json:"database_ids"`
}

func registerSync(g *echo.Group, a *appRoutes) {
	if a.cfg.Sync == nil {
		return
	}
	g.POST("/sync/start", a.syncStart)
	g.POST("/sync/stop", a.syncStop)
	registerSyncParked(g, a)
	registerSyncSettings(g, a)
}

func syncBy(c echo.Context) string { return "amo_user:" + strconv.FormatInt(sessionOf(c).UserID, 10) }

func (a *appRoutes) syncStart(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	var req syncStartRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := a.cfg.Sync.Start(c.Request().Context(), acc, req.Since, req.DatabaseIDs, syncBy(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"sync_state": "running"})
}

func (a *appRoutes) syncStop(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	if err := a.cfg.Sync.Stop(c.Request().Context(), acc, syncBy(c)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"sync_state": "stopped"})
}
