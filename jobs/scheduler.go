package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
)

// Periodic is a task enqueued once per slot of Every.
type Periodic struct {
	Every time.Duration
	// Task builds the task for a slot (the slot's start time, UTC).
	Task func(slot time.Time) *asynq.Task
}

// Scheduler enqueues periodic tasks. Any number of schedulers may run (one
// per worker replica): each slot's task has the id "periodic:{type}:{slot}",
// kept for longer than the slot, so only the first enqueue of a slot wins.
type Scheduler struct {
	client  *asynq.Client
	entries []Periodic
	now     func() time.Time
	log     *slog.Logger
	last    []time.Time
}

// NewScheduler returns a scheduler enqueuing through client.
func NewScheduler(client *asynq.Client, log *slog.Logger, now func() time.Time, entries ...Periodic) (*Scheduler, error) {
	if client == nil || log == nil || now == nil {
		return nil, errors.New("jobs: scheduler needs a client, a logger and a clock")
	}
	for _, e := range entries {
		if e.Every < time.Second || e.Task == nil {
			return nil, errors.New("jobs: periodic entry needs Every >= 1s and a Task")
		}
	}
	return &Scheduler{client: client, entries: entries, now: now, log: log.With("component", "scheduler"),
		last: make([]time.Time, len(entries))}, nil
}

// Run ticks every second until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick enqueues every entry whose current slot this scheduler has not yet
// enqueued. It returns how many tasks it enqueued (duplicates excluded).
func (s *Scheduler) Tick(ctx context.Context) int {
	now := s.now().UTC()
	enqueued := 0
	for i, e := range s.entries {
		slot := now.Truncate(e.Every)
		if slot.Equal(s.last[i]) {
			continue
		}
		task := e.Task(slot)
		id := fmt.Sprintf("periodic:%s:%d", task.Type(), slot.Unix())
		_, err := s.client.EnqueueContext(ctx, task, asynq.TaskID(id), asynq.Retention(e.Every+time.Minute))
		switch {
		case err == nil:
			enqueued++
			s.last[i] = slot
		case errors.Is(err, asynq.ErrTaskIDConflict):
			s.last[i] = slot // another scheduler got there first
		default:
			// Redis may be down; the next tick tries the same slot again.
			s.log.WarnContext(ctx, "enqueue periodic task", "type", task.Type(), "err", err)
		}
	}
	return enqueued
}
