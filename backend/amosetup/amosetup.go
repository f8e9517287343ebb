// Package amosetup connects backend/setup to amoCRM: it reads an account
// into a setup.Snapshot and creates pipelines, stages and fields through an
// *amocrm.AccountAPI, which respects the shared per-account rate limit.
//
// What it promises:
//   - Snapshot lists every pipeline with all its stages (the unsorted stage,
//     type 1, is marked Unsorted; won 142 and lost 143 are kept as amoCRM
//     lists them), every contact and lead custom field with its enums, and
//     the users when the token may read them (Users is nil on 403).
//   - Creates are single calls that are not retried blindly by the client: a
//     retry after an applied write is the runner's business (it re-reads).
//   - amoCRM's validation errors (caps, bad values) become
//     *setup.RejectedError with amoCRM's own words; every other error is
//     returned as the client gave it (Transient classifies them).
package amosetup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/svyazka/svyazka/amocrm"
	"github.com/svyazka/svyazka/backend/setup"
)

// API is the part of *amocrm.AccountAPI the adapter uses.
type API interface {
	Pipelines(ctx context.Context) ([]amocrm.Pipeline, error)
	CreatePipelines(ctx context.Context, pipelines []amocrm.Pipeline) ([]amocrm.Pipeline, error)
	CreateStatuses(ctx context.Context, pipelineID int64, statuses []amocrm.Status) ([]amocrm.Status, error)
	CustomFields(ctx context.Context, entity string) ([]amocrm.CustomField, error)
	CreateCustomFields(ctx context.Context, entity string, fields []amocrm.CustomField) ([]amocrm.CustomField, error)
	AllUsers(ctx context.Context) ([]amocrm.User, error)
}

// CRM implements setup.CRM for one account.
type CRM struct {
	API API
}

var _ setup.CRM = CRM{}

// stageColors are the colours given to created stages, one per state, from
// amoCRM's fixed palette.
var stageColors = []string{"#fffeb2", "#98cbff", "#87f2c0", "#ffc8c8", "#e6e8ea"}

// Snapshot implements setup.CRM.
func (c CRM) Snapshot(ctx context.Context) (setup.Snapshot, error) {
	pipes, err := c.API.Pipelines(ctx)
	if err != nil {
		return setup.Snapshot{}, err
	}
	snap := setup.Snapshot{}
	for _, p := range pipes {
		snap.Pipelines = append(snap.Pipelines, pipeline(p))
	}
	contacts, err := c.API.CustomFields(ctx, amocrm.EntityContacts)
	if err != nil {
		return setup.Snapshot{}, err
	}
	leads, err := c.API.CustomFields(ctx, amocrm.EntityLeads)
	if err != nil {
		return setup.Snapshot{}, err
	}
	snap.ContactFields, snap.LeadFields = fields(contacts), fields(leads)
	users, err := c.API.AllUsers(ctx)
	switch {
	case errors.Is(err, amocrm.ErrForbidden):
		// Not an admin token: the responsible-user policy is not checked.
	case err != nil:
		return setup.Snapshot{}, err
	default:
		snap.Users = make([]setup.User, 0, len(users))
		for _, u := range users {
			snap.Users = append(snap.Users, setup.User{ID: u.ID, Name: u.Name, Active: u.Rights.IsActive})
		}
	}
	return snap, nil
}

func pipeline(p amocrm.Pipeline) setup.Pipeline {
	out := setup.Pipeline{ID: p.ID, Name: p.Name, Archived: p.IsArchive}
	for _, st := range p.Embedded.Statuses {
		out.Stages = append(out.Stages, setup.Stage{ID: st.ID, Name: st.Name, Unsorted: st.Type == 1})
	}
	return out
}

func fields(in []amocrm.CustomField) []setup.Field {
	out := make([]setup.Field, 0, len(in))
	for _, f := range in {
		sf := setup.Field{ID: f.ID, Name: f.Name, Code: f.Code, Type: setup.FieldType(f.Type)}
		for _, e := range f.Enums {
			sf.Enums = append(sf.Enums, setup.Enum{ID: e.ID, Value: e.Value})
		}
		out = append(out, sf)
	}
	return out
}

// CreatePipeline implements setup.CRM.
func (c CRM) CreatePipeline(ctx context.Context, name string, stages []string) (setup.Pipeline, error) {
	p := amocrm.Pipeline{Name: name, Sort: 100, IsMain: false, IsUnsortedOn: false}
	for i, s := range stages {
		p.Embedded.Statuses = append(p.Embedded.Statuses, amocrm.Status{Name: s, Sort: 20 + 10*i, Color: stageColors[i%len(stageColors)]})
	}
	out, err := c.API.CreatePipelines(ctx, []amocrm.Pipeline{p})
	if err != nil {
		return setup.Pipeline{}, rejected(err)
	}
	if len(out) != 1 || out[0].ID == 0 {
		return setup.Pipeline{}, fmt.Errorf("amosetup: create pipeline %q: %w: no pipeline in the answer", name, amocrm.ErrMalformed)
	}
	return pipeline(out[0]), nil
}

// CreateStage implements setup.CRM. The stage goes before won and lost.
func (c CRM) CreateStage(ctx context.Context, pipelineID int64, name string) (setup.Stage, error) {
	out, err := c.API.CreateStatuses(ctx, pipelineID, []amocrm.Status{{Name: name, Sort: 9000, Color: stageColors[0]}})
	if err != nil {
		return setup.Stage{}, rejected(err)
	}
	if len(out) != 1 || out[0].ID == 0 {
		return setup.Stage{}, fmt.Errorf("amosetup: create stage %q: %w: no status in the answer", name, amocrm.ErrMalformed)
	}
	return setup.Stage{ID: out[0].ID, Name: out[0].Name}, nil
}

// CreateField implements setup.CRM.
func (c CRM) CreateField(ctx context.Context, e setup.Entity, name string, t setup.FieldType, enums []string) (setup.Field, error) {
	f := amocrm.CustomField{Name: name, Type: string(t)}
	for i, v := range enums {
		f.Enums = append(f.Enums, amocrm.Enum{Value: v, Sort: 10 * (i + 1)})
	}
	out, err := c.API.CreateCustomFields(ctx, entity(e), []amocrm.CustomField{f})
	if err != nil {
		return setup.Field{}, rejected(err)
	}
	if len(out) != 1 || out[0].ID == 0 {
		return setup.Field{}, fmt.Errorf("amosetup: create field %q: %w: no field in the answer", name, amocrm.ErrMalformed)
	}
	return fields(out)[0], nil
}

func entity(e setup.Entity) string {
	if e == setup.EntityContact {
		return amocrm.EntityContacts
	}
	return amocrm.EntityLeads
}

// rejected turns amoCRM's validation error into a *setup.RejectedError with
// its details; other errors pass as they are.
func rejected(err error) error {
	var ve *amocrm.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var parts []string
	for _, item := range ve.Items {
		for _, fe := range item.Errors {
			msg := fe.Code
			if fe.Detail != "" {
				msg += ": " + fe.Detail
			}
			if fe.Path != "" {
				msg += " (" + fe.Path + ")"
			}
			parts = append(parts, msg)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d %s", ve.Status, ve.Detail))
	}
	return &setup.RejectedError{Message: strings.Join(parts, "; "), Err: err}
}

// Transient reports whether an amoCRM error is worth retrying: 429, 5xx,
// timeouts and connection failures.
func Transient(err error) bool { return amocrm.Retryable(err) }

// RetryAfter is the delay amoCRM's rate limit asks for: a few seconds after
// a 429, 0 for other errors (the task's own backoff applies).
func RetryAfter(err error) time.Duration {
	if errors.Is(err, amocrm.ErrRateLimited) {
		return 5 * time.Second
	}
	return 0
}

// Accounts opens accounts' amoCRM by our account id.
type Accounts struct {
	Client *amocrm.Client
	// Ref returns the account's amoCRM host.
	Ref func(ctx context.Context, accountID int64) (amocrm.AccountRef, error)
}

// CRM returns the account's setup.CRM (a Runner's CRM func).
func (a Accounts) CRM(ctx context.Context, accountID int64) (setup.CRM, error) {
	if a.Client == nil || a.Ref == nil {
		return nil, errors.New("amosetup: Accounts needs Client and Ref")
	}
	ref, err := a.Ref(ctx, accountID)
	if err != nil {
		return nil, err
	}
	return CRM{API: a.Client.Account(ref)}, nil
}
