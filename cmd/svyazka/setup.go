package main

import (
	"context"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/amosetup"
	"github.com/svyazka/svyazka/backend/setup"
	"github.com/svyazka/svyazka/jobs"
)

// setupRunner is autosetup, flexible mapping and the drift check on our
// database and the process's amoCRM client (built on first use).
func (m *Main) setupRunner() *setup.Runner {
	return &setup.Runner{
		Store:     jobs.SetupStore{DB: m.DB},
		CRM:       m.setupCRM,
		Transient: amosetup.Transient,
		Now:       time.Now,
	}
}

func (m *Main) setupCRM(ctx context.Context, accountID int64) (setup.CRM, error) {
	client, _, err := m.amo()
	if err != nil {
		return nil, err
	}
	return amosetup.Accounts{Client: client, Ref: func(ctx context.Context, id int64) (amocrm.AccountRef, error) {
		acc, err := m.DB.AccountByID(ctx, id)
		if err != nil {
			return amocrm.AccountRef{}, err
		}
		return amocrm.AccountRef{ID: acc.ID, Subdomain: acc.Subdomain, Domain: acc.BaseDomain}, nil
	}}.CRM(ctx, accountID)
}
