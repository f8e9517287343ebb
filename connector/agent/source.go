package agent

import (
	"context"
	"errors"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Source reads changes from the clinic's database (IDENT). The agent calls
// Check and Read from different goroutines, so an implementation must allow
// them to run concurrently (a database/sql pool does).
type Source interface {
	// Check connects to the database and returns its version. Its error
	// carries a short user-safe Russian message (wrong password, database not
	// found) and never a credential; see UserMessage.
	Check(ctx context.Context) (version string, err error)
	// Read returns the next page of changes after cursor (nil: from the very
	// beginning) and the cursor to pass next time. more is false when the
	// source is caught up; the agent then sleeps for the poll interval.
	// The cursor is opaque to the agent; it is stored together with the page.
	Read(ctx context.Context, cursor []byte) (records []protocol.Record, next []byte, more bool, err error)
	// Close releases the connection.
	Close() error
}

// userMessager is implemented by source errors that carry a message for people
// separate from their technical Error text.
type userMessager interface{ UserMessage() string }

// maxDetailRunes bounds the reason shown in the widget.
const maxDetailRunes = 300

// UserMessage returns the user-safe text of a Source error: the UserMessage of
// the first error in its chain that has one, otherwise its Error text (Source
// errors are promised to be user-safe), cut to a few hundred characters.
func UserMessage(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var um userMessager
	if errors.As(err, &um) {
		msg = um.UserMessage()
	}
	if r := []rune(msg); len(r) > maxDetailRunes {
		msg = string(r[:maxDetailRunes]) + "…"
	}
	return msg
}
