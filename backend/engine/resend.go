package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/eventlog"
	"github.com/svyazka/svyazka/backend/store"
)

// ParkedStore is the storage Resend uses; *store.DB satisfies it. A
// Control whose Store lacks it cannot resend.
type ParkedStore interface {
	ResendParked(ctx context.Context, in store.ResendInput) (store.ParkedRecord, error)
}

// Resend is «Отправить повторно» for a parked record of the account: it is
// unparked and queued again as a change, and the sync is woken, in one
// transaction with an event. Errors (apperr): NotFound when the account has
// no such parked record.
func (c Control) Resend(ctx context.Context, acc store.Account, parkedID int64, by string) (store.ParkedRecord, error) {
	ps, ok := c.Store.(ParkedStore)
	if !ok || c.Wake == nil || c.Now == nil {
		return store.ParkedRecord{}, errors.New("engine: Resend needs a ParkedStore, Wake and Now")
	}
	now := c.Now()
	task, err := c.Wake(acc.ID, fmt.Sprintf("resend:%d:%d", parkedID, now.UnixNano()))
	if err != nil {
		return store.ParkedRecord{}, err
	}
	p, err := ps.ResendParked(ctx, store.ResendInput{AccountID: acc.ID, ParkedID: parkedID, Task: task, Now: now,
		Event: func(p store.ParkedRecord) eventlog.Event {
			what := "Пациент"
			if p.Kind == "reception" {
				what = "Запись"
			}
			dbID := p.DatabaseID
			return eventlog.Event{AccountID: acc.ID, DatabaseID: &dbID, Type: EventSync,
				Message: fmt.Sprintf("%s %s отправлен(а) в amoCRM повторно", what, p.SourceID),
				Details: map[string]any{"by": by, "kind": p.Kind, "source_id": p.SourceID, "parked_id": p.ID}}
		}})
	if errors.Is(err, store.ErrNotFound) {
		return store.ParkedRecord{}, apperr.New(apperr.NotFound, "Запись для повторной отправки не найдена.")
	}
	return p, err
}
