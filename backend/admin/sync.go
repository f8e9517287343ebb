package admin

import (
	"context"

	"github.com/svyazka/svyazka/backend/apperr"
)

// StartSync starts the account's sync from since (2006-01-02, "" keeps the
// stored date) for every database, with engine.Control's precondition check.
// Errors: those of Status's account lookup, Conflict naming every missing
// precondition (or that it runs already), Invalid for a bad date,
// Unavailable when the service has no sync control.
func (s *Service) StartSync(ctx context.Context, account, since string) error {
	if s.sync == nil {
		return apperr.New(apperr.Unavailable, "sync control is not configured")
	}
	acc, err := s.account(ctx, account)
	if err != nil {
		return err
	}
	return s.sync.Start(ctx, acc, since, nil, "support")
}

// StopSync stops the account's sync. Errors: the account lookup's, Conflict
// when it is stopped already, Unavailable without sync control.
func (s *Service) StopSync(ctx context.Context, account string) error {
	if s.sync == nil {
		return apperr.New(apperr.Unavailable, "sync control is not configured")
	}
	acc, err := s.account(ctx, account)
	if err != nil {
		return err
	}
	return s.sync.Stop(ctx, acc, "support")
}
