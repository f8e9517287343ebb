package main

import (
	"context"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/mirror"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/jobs"
)

// syncEngine is the sync over the shared amoCRM client; setup's drift
// check holds it when the mapping no longer fits amoCRM.
func (m *Main) syncEngine() (*engine.Engine, error) {
	return engine.New(engine.Config{Store: m.DB, Rules: mirror.DefaultRules(), Now: time.Now, Log: m.Log.With("component", "sync"),
		CheckDrift: m.setupRunner().CheckDrift,
		WriteMarks: jobs.RedisWriteMarks{Client: m.Redis},
		CRM: func(ctx context.Context, accountID int64) (engine.CRM, error) {
			client, _, err := m.amo()
			if err != nil {
				return nil, err
			}
			acc, err := m.DB.AccountByID(ctx, accountID)
			if err != nil {
				return nil, err
			}
			return client.Account(amocrm.AccountRef{ID: acc.ID, Subdomain: acc.Subdomain, Domain: acc.BaseDomain}), nil
		}})
}

// syncControl starts and stops accounts' sync, waking it through the outbox.
func (m *Main) syncControl() *engine.Control {
	return &engine.Control{Store: m.DB, Now: time.Now, Wake: func(accountID int64, key string) (store.OutboxMessage, error) {
		t, err := jobs.NewSyncAccountTask(jobs.SyncAccountPayload{AccountID: accountID}, key)
		return t.Outbox(), err
	}}
}
