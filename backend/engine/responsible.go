package engine

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/setup"
)

// UserLister is the optional part of a CRM that lists the account's users;
// *amocrm.AccountAPI has it. Without it (or with a token that may not read
// users) doctor mode falls back to the overrides and the fixed user.
type UserLister interface {
	AllUsers(ctx context.Context) ([]amocrm.User, error)
}

// UsersTTL is how long the engine reuses an account's users it read: a
// user added in amoCRM is matched to doctors within it, and an import made
// of many Process calls reads them a few times, not once per call.
const UsersTTL = 10 * time.Minute

type cachedUsers struct {
	at   time.Time
	list []setup.User
}

// users reads the account's users at most once per Process call and
// UsersTTL.
func (a *accountRun) users(ctx context.Context) ([]setup.User, error) {
	if a.usersRead {
		return a.userList, nil
	}
	e := a.e
	now := e.cfg.Now()
	e.mu.Lock()
	c, ok := e.users[a.accountID]
	e.mu.Unlock()
	if ok && now.Sub(c.at) < UsersTTL && !now.Before(c.at) {
		a.userList, a.usersRead = c.list, true
		return a.userList, nil
	}
	ul, ok := a.crm.(UserLister)
	if !ok {
		a.usersRead = true
		return nil, nil
	}
	all, err := ul.AllUsers(ctx)
	switch {
	case errors.Is(err, amocrm.ErrForbidden):
	case err != nil:
		return nil, err
	default:
		for _, u := range all {
			a.userList = append(a.userList, setup.User{ID: u.ID, Name: u.Name, Active: u.Rights.IsActive})
		}
	}
	a.usersRead = true
	e.mu.Lock()
	e.users[a.accountID] = cachedUsers{at: now, list: a.userList}
	e.mu.Unlock()
	return a.userList, nil
}

// responsibles decides the responsible user per doctor of the database
// (setup.MatchDoctors over the account's users with the overrides); it is
// nil in fixed mode.
func (r *dbRun) responsibles(ctx context.Context) (map[string]setup.Match, error) {
	p := r.mv.Mapping.Responsible
	if p.Mode == setup.ResponsibleFixed || r.dict == nil {
		return nil, nil
	}
	if r.matches != nil {
		return r.matches, nil
	}
	users, err := r.acct.users(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(r.dict.Doctors))
	for id := range r.dict.Doctors {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	doctors := make([]setup.Doctor, 0, len(ids))
	for _, id := range ids {
		doctors = append(doctors, setup.Doctor{ID: id, Name: r.dict.DoctorName(id)})
	}
	r.matches = setup.MatchDoctors(doctors, users, p.Overrides)
	return r.matches, nil
}

// responsibleOf picks the lead's responsible user: fixed mode's user; in
// doctor mode the override or name match for the doctor, else the fallback
// user. 0 leaves amoCRM's default.
func responsibleOf(p setup.ResponsiblePolicy, matches map[string]setup.Match, staffID string) int64 {
	if p.Mode == setup.ResponsibleFixed {
		return p.UserID
	}
	if id := p.Overrides[staffID]; staffID != "" && id != 0 {
		return id
	}
	if m := matches[staffID]; staffID != "" && m.Matched() {
		return m.UserID
	}
	return p.UserID
}
