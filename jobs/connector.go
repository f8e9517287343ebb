package jobs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
)

// StaleMarker is the storage the connector check uses.
type StaleMarker interface {
	MarkStaleConnectors(ctx context.Context, cutoff, now time.Time) (int, error)
}

// ConnectorCheck handles TypeConnectorCheck: connectors not heard from for
// StaleAfter become disconnected.
type ConnectorCheck struct {
	Store      StaleMarker
	StaleAfter time.Duration
	Now        func() time.Time
	Log        *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (h *ConnectorCheck) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	if h.Store == nil || h.Now == nil || h.Log == nil || h.StaleAfter <= 0 {
		return errors.New("jobs: connector check needs Store, Now, Log and StaleAfter")
	}
	now := h.Now().UTC()
	n, err := h.Store.MarkStaleConnectors(ctx, now.Add(-h.StaleAfter), now)
	if err != nil {
		return err
	}
	if n > 0 {
		h.Log.InfoContext(ctx, "connectors marked disconnected", "count", n)
	}
	return nil
}
