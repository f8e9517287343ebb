package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/svyazka/svyazka/backend/apperr"
)

// AccountBySubdomain returns the account whose amoCRM subdomain is sub
// (compared case-insensitively). Subdomains are not unique over time (an
// account deleted in amoCRM frees its subdomain, and kommo.com has its own
// namespace): when several accounts share sub, the one active account among
// them is returned, and otherwise an apperr Conflict naming their amoCRM ids
// so the caller can pick one by id. ErrNotFound when none matches.
func (db *DB) AccountBySubdomain(ctx context.Context, sub string) (Account, error) {
	var accs []Account
	if err := db.Gorm(ctx).Where("lower(subdomain) = ?", strings.ToLower(sub)).Order("id").Find(&accs).Error; err != nil {
		return Account{}, fmt.Errorf("store: account (subdomain %q): %w", sub, err)
	}
	switch len(accs) {
	case 0:
		return Account{}, ErrNotFound
	case 1:
		return accs[0], nil
	}
	var active []Account
	ids := make([]string, 0, len(accs))
	for _, a := range accs {
		ids = append(ids, fmt.Sprint(a.AmoAccountID))
		if a.Status == AccountActive {
			active = append(active, a)
		}
	}
	if len(active) == 1 {
		return active[0], nil
	}
	return Account{}, apperr.New(apperr.Conflict, "subdomain %q belongs to several accounts (amoCRM ids %s); use the id",
		sub, strings.Join(ids, ", "))
}
