package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/svyazka/svyazka/backend/apperr"
)

// «Отправить повторно» for a record amoCRM refused (the event log's
// sync_error events carry its parked_id). It needs a widget session of an
// amoCRM admin (403 otherwise).
//
// POST /api/app/v1/sync/parked/:id/resend → 200 {"resent": {"kind": "reception", "source_id": "10"}}
//
//	The record is unparked and queued again; the sync is woken. 404 when the
//	account has no such parked record; 400 for an id that is not a number.

func registerSyncParked(g *echo.Group, a *appRoutes) {
	if a.cfg.Sync == nil {
		return
	}
	g.POST("/sync/parked/:id/resend", a.syncResend)
}

func (a *appRoutes) syncResend(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return apperr.New(apperr.Invalid, "Неверный номер записи.")
	}
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	p, err := a.cfg.Sync.Resend(c.Request().Context(), acc, id, syncBy(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"resent": map[string]string{"kind": p.Kind, "source_id": p.SourceID}})
}
