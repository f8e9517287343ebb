package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/svyazka/svyazka/backend/apperr"
	"github.com/svyazka/svyazka/backend/setup"
)

// SetupRunner is the autosetup the service drives; *setup.Runner satisfies it.
type SetupRunner interface {
	Start(ctx context.Context, accountID int64, blocks []setup.Block, renames map[setup.ItemKey]string, startedBy string) (setup.Run, setup.Proposal, error)
	Run(ctx context.Context, runID string) error
	Fail(ctx context.Context, runID string, cause error) error
	AccountRun(ctx context.Context, accountID int64, runID string) (setup.Run, error)
	State(ctx context.Context, accountID int64) (setup.AccountState, error)
}

// SetupAttempts bounds how often Setup retries a run after amoCRM's 429s
// and 5xx before it marks the run failed.
const SetupAttempts = 6

// SetupItem is one item of an autosetup report.
type SetupItem struct {
	Item setup.ItemKey
	// Outcome is reused, created or skipped.
	Outcome string
	Name    string
	ID      int64
	Note    string
}

// SetupReport is what `svyazka admin setup` prints.
type SetupReport struct {
	RunID  string
	Items  []SetupItem
	Status setup.Status
}

// SetupByCLI is the StartedBy of runs started from the command line.
const SetupByCLI = "support:cli"

// Setup runs autosetup on the account synchronously with the default plan
// and the reuse proposals (no renames) for blocks (empty: all), retrying
// amoCRM's transient failures a few times, and reports what was reused and
// created. Errors: those of Start (Conflict for a running sync or run or a
// cap, naming the item; Invalid for an unknown block), Conflict naming the
// failing item when the run failed, NotFound for the account.
func (s *Service) Setup(ctx context.Context, account string, blocks []setup.Block) (SetupReport, error) {
	if s.setup == nil {
		return SetupReport{}, errors.New("admin: setup is not configured in this process")
	}
	acc, err := s.account(ctx, account)
	if err != nil {
		return SetupReport{}, err
	}
	run, prop, err := s.setup.Start(ctx, acc.ID, blocks, nil, SetupByCLI)
	if err != nil {
		return SetupReport{}, err
	}
	delay := time.Second
	for attempt := 1; ; attempt++ {
		err = s.setup.Run(ctx, run.ID)
		if err == nil || errors.Is(err, setup.ErrRunFailed) || ctx.Err() != nil {
			break
		}
		if attempt >= SetupAttempts {
			if ferr := s.setup.Fail(context.WithoutCancel(ctx), run.ID, err); ferr != nil {
				return SetupReport{}, errors.Join(err, ferr)
			}
			break
		}
		s.log.WarnContext(ctx, "autosetup interrupted, retrying", "run_id", run.ID, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay *= 2
	}
	if ctx.Err() != nil {
		return SetupReport{}, fmt.Errorf("admin: setup of account %d interrupted (run %s stays running; the worker or a new run resumes it): %w", acc.ID, run.ID, ctx.Err())
	}
	final, ferr := s.setup.AccountRun(ctx, acc.ID, run.ID)
	if ferr != nil {
		return SetupReport{}, fmt.Errorf("admin: setup of account %d: %w", acc.ID, ferr)
	}
	st, serr := s.setup.State(ctx, acc.ID)
	if serr != nil {
		return SetupReport{}, fmt.Errorf("admin: setup of account %d: %w", acc.ID, serr)
	}
	rep := SetupReport{RunID: run.ID, Status: st.Status}
	for _, d := range setup.Decisions(prop) {
		it := SetupItem{Item: d.Item, Name: d.Name, ID: d.ExistingID, Note: d.Note, Outcome: string(d.Action)}
		if id, ok := final.Created[d.Item]; ok {
			it.Outcome, it.ID = "created", id
		} else if d.Action == setup.ActionReuse {
			it.Outcome = "reused"
		} else if d.Action == setup.ActionSkip {
			it.Outcome = "skipped"
		}
		rep.Items = append(rep.Items, it)
	}
	if final.State != setup.RunSucceeded {
		item := string(final.ErrorItem)
		if item == "" {
			item = "-"
		}
		return rep, apperr.New(apperr.Conflict, "autosetup failed at %s: %s", item, st.Detail)
	}
	if st.Status != setup.StatusConfigured {
		return rep, apperr.New(apperr.Conflict, "autosetup finished, but account %s is %s: %s", acc.Subdomain, st.Status, st.Detail)
	}
	return rep, nil
}
