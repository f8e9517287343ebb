package httpapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
)

// The sync's account settings («Настройки»). The route needs a widget
// session of an amoCRM admin (403 otherwise) and answers with the standard
// error body on failure.
//
// PUT /api/app/v1/sync/settings {"continue_inbound_leads": false} → 200 {"continue_inbound_leads": false}
//
//	continue_inbound_leads is rule 6 of the sync: an open lead outside our
//	pipelines created in the last 30 days (a call, a site form) is
//	continued by the patient's next booked appointment instead of a new
//	lead. The field is required (400 naming it when absent or null);
//	unknown fields and trailing data are 400 too. A change is recorded in
//	the event log in the same transaction; saving the value it has already
//	records nothing.
//
// The current value is in GET /api/app/v1/state under
// "sync"."continue_inbound_leads".

// SyncSettingsStore is the storage of the sync's account settings;
// *store.DB satisfies it.
type SyncSettingsStore interface {
	SyncSettings(ctx context.Context, accountID int64) (store.SyncSettings, error)
	SaveContinueInboundLeads(ctx context.Context, accountID int64, on bool, ev eventlog.Event) (changed bool, err error)
}

type syncSettingsRequest struct {
	// A pointer, so an absent field is told from false.
	ContinueInboundLeads *bool `json:"continue_inbound_leads"`
}

type syncSettingsJSON struct {
	ContinueInboundLeads bool `json:"continue_inbound_leads"`
}

func registerSyncSettings(g *echo.Group, a *appRoutes) {
	g.PUT("/sync/settings", a.syncSettingsSave)
}

func (a *appRoutes) syncSettingsSave(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return err
	}
	acc, err := a.account(c)
	if err != nil {
		return err
	}
	var req syncSettingsRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.ContinueInboundLeads == nil {
		return apperr.New(apperr.Invalid, "Поле «continue_inbound_leads» обязательно: true или false.")
	}
	on := *req.ContinueInboundLeads
	ev := continueInboundLeadsEvent(acc.ID, on, sessionOf(c).UserID, syncBy(c))
	if _, err := a.cfg.App.SaveContinueInboundLeads(c.Request().Context(), acc.ID, on, ev); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, syncSettingsJSON{ContinueInboundLeads: on})
}

// continueInboundLeadsEvent is the event log's entry for a change of the
// setting by an amoCRM user.
func continueInboundLeadsEvent(accountID int64, on bool, userID int64, by string) eventlog.Event {
	state := "выключено"
	if on {
		state = "включено"
	}
	return eventlog.Event{AccountID: accountID, Type: eventlog.TypeSetup, Severity: eventlog.Info,
		Message: fmt.Sprintf("Продолжение входящих заявок %s (пользователь amoCRM #%d).", state, userID),
		Details: map[string]any{"by": by, "setting": "continue_inbound_leads", "value": on}}
}
