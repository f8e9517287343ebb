package setup

import (
	"errors"

	"github.com/svyazka/svyazka/backend/apperr"
)

// Kinds of setup errors; an *ItemError wraps exactly one of them. Check with
// errors.Is.
var (
	// ErrCapExceeded: creating the item would exceed an amoCRM cap (pipelines
	// per account, stages per pipeline, fields per entity).
	ErrCapExceeded = errors.New("setup: amoCRM cap exceeded")
	// ErrNameCollision: a renamed item's name is taken by another item of the
	// plan or by an amoCRM item that cannot be reused, or a default name and
	// its fallback are both taken.
	ErrNameCollision = errors.New("setup: name collision")
	// ErrInvalidName: a rename is empty after normalisation.
	ErrInvalidName = errors.New("setup: invalid name")
	// ErrNotRenamable: the item cannot be renamed (amoCRM's predefined fields).
	ErrNotRenamable = errors.New("setup: item cannot be renamed")
	// ErrUnknownItem: a rename or a created id names no item of the plan.
	ErrUnknownItem = errors.New("setup: unknown item")
	// ErrUnknownBlock: a block is not one of AllBlocks, or none was chosen.
	ErrUnknownBlock = errors.New("setup: unknown block")
	// ErrInvalidPlan: the plan itself is inconsistent (a programming error).
	ErrInvalidPlan = errors.New("setup: invalid plan")
	// ErrNotCreated: a proposal said "create" but no created id was given for
	// the item (or not all its enums were created).
	ErrNotCreated = errors.New("setup: item not created")
)

// ItemError is a setup error about one item: Item names it, Kind is one of
// the Err* values above and Message says it in Russian for the settings
// page. errors.Is(err, Kind) holds, and errors.As finds an *apperr.Error with
// the message (code invalid or conflict) for the HTTP layer.
type ItemError struct {
	Item    ItemKey
	Kind    error
	Message string
}

func newItemError(item ItemKey, kind error, message string) *ItemError {
	return &ItemError{Item: item, Kind: kind, Message: message}
}

// Error implements error.
func (e *ItemError) Error() string { return e.Kind.Error() + ": " + string(e.Item) + ": " + e.Message }

// Unwrap returns the kind and the application error that carries the message.
func (e *ItemError) Unwrap() []error {
	code := apperr.Invalid
	switch e.Kind {
	case ErrCapExceeded, ErrNameCollision:
		code = apperr.Conflict
	case ErrInvalidPlan, ErrNotCreated:
		code = apperr.Internal
	}
	return []error{e.Kind, apperr.New(code, "%s", e.Message)}
}
