package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/svyazka/svyazka/backend/store"
)

// Task is a task as built by its constructor: type, payload and the options
// it is enqueued with. It travels through the outbox unchanged, so a task
// relayed later runs exactly as if it had been enqueued directly.
type Task struct {
	Type     string
	Payload  []byte
	Queue    string
	MaxRetry int
	Timeout  time.Duration
	// Retention keeps a finished task's id in Redis, so a second enqueue of
	// the same id (a relay repeating itself after a crash) is refused.
	Retention time.Duration
	// ID is the task's domain key (unique for all time, e.g. the entity key
	// and its revision); empty means "a fresh UUID".
	ID string
}

// Outbox converts the task into the outbox row that carries it.
func (t Task) Outbox() store.OutboxMessage {
	return store.OutboxMessage{TaskID: t.ID, TaskType: t.Type, Payload: t.Payload, Queue: t.Queue,
		MaxRetry: t.MaxRetry, TimeoutSeconds: int((t.Timeout + time.Second - 1) / time.Second),
		RetentionSeconds: int(t.Retention / time.Second)}
}

// asynqTask rebuilds the asynq task and its options from an outbox row.
func asynqTask(m store.OutboxMessage) (*asynq.Task, []asynq.Option) {
	opts := []asynq.Option{asynq.Queue(m.Queue), asynq.TaskID(m.TaskID), asynq.MaxRetry(m.MaxRetry),
		asynq.Timeout(time.Duration(m.TimeoutSeconds) * time.Second)}
	if m.RetentionSeconds > 0 {
		opts = append(opts, asynq.Retention(time.Duration(m.RetentionSeconds)*time.Second))
	}
	return asynq.NewTask(m.TaskType, m.Payload), opts
}

func newTask(taskType string, payload any, queue string, maxRetry int, timeout time.Duration) (Task, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return Task{}, fmt.Errorf("jobs: %s payload: %w", taskType, err)
	}
	return Task{Type: taskType, Payload: raw, Queue: queue, MaxRetry: maxRetry, Timeout: timeout, Retention: 24 * time.Hour}, nil
}

// ErrBadPayload marks a payload that can never be processed; handlers wrap
// it with asynq.SkipRetry.
var ErrBadPayload = errors.New("jobs: bad payload")

func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("%w: %s: %v: %w", ErrBadPayload, t.Type(), err, asynq.SkipRetry)
	}
	return nil
}

// Task types. Names are area:action.
const (
	// TypeInstallComplete exchanges an install's authorization code and
	// creates or re-activates the account.
	TypeInstallComplete = "install:complete"
	// TypeInstallConfirmDisable asks amoCRM whether a disable hook is real
	// (our token answers 401) before the account is uninstalled.
	TypeInstallConfirmDisable = "install:confirm-disable"
)

// InstallCompletePayload is the payload of TypeInstallComplete.
type InstallCompletePayload struct {
	// SealedCode is the authorization code sealed with the install context.
	SealedCode string `json:"sealed_code"`
	Referer    string `json:"referer"`
	FromWidget bool   `json:"from_widget"`
	ReceivedAt int64  `json:"received_at"`
}

// NewInstallCompleteTask builds TypeInstallComplete: critical queue, a few
// retries within the code's 20-minute life, one minute per attempt.
func NewInstallCompleteTask(p InstallCompletePayload) (Task, error) {
	return newTask(TypeInstallComplete, p, QueueCritical, 8, time.Minute)
}

// ParseInstallComplete decodes a TypeInstallComplete payload; a bad one is
// permanent (wraps asynq.SkipRetry).
func ParseInstallComplete(t *asynq.Task) (InstallCompletePayload, error) {
	var p InstallCompletePayload
	err := decode(t, &p)
	return p, err
}

// InstallConfirmDisablePayload is the payload of TypeInstallConfirmDisable.
type InstallConfirmDisablePayload struct {
	AmoAccountID int64 `json:"amo_account_id"`
	ReceivedAt   int64 `json:"received_at"`
}

// NewInstallConfirmDisableTask builds TypeInstallConfirmDisable. Hooks for
// one account within a minute are one task (their id is the account and the
// minute), so a replayed hook URL cannot flood amoCRM with checks.
func NewInstallConfirmDisableTask(p InstallConfirmDisablePayload) (Task, error) {
	t, err := newTask(TypeInstallConfirmDisable, p, QueueCritical, 10, time.Minute)
	t.ID = "install:confirm-disable:" + strconv.FormatInt(p.AmoAccountID, 10) + ":" + strconv.FormatInt(p.ReceivedAt/60, 10)
	return t, err
}

// ParseInstallConfirmDisable decodes a TypeInstallConfirmDisable payload.
func ParseInstallConfirmDisable(t *asynq.Task) (InstallConfirmDisablePayload, error) {
	var p InstallConfirmDisablePayload
	err := decode(t, &p)
	return p, err
}

// TypeConnectorCheck marks disconnected the connectors whose heartbeats
// stopped, logging each change once. It is periodic; its slot id makes it
// run once per slot however many schedulers fire it.
const TypeConnectorCheck = "connector:check"

// NewConnectorCheckTask builds TypeConnectorCheck (low queue, no retry: the
// next slot runs it again).
func NewConnectorCheckTask() *asynq.Task {
	return asynq.NewTask(TypeConnectorCheck, nil, asynq.Queue(QueueLow), asynq.MaxRetry(0), asynq.Timeout(time.Minute))
}

// Setup task types.
const (
	// TypeSetupApply applies one autosetup run (setup.Runner.Run).
	TypeSetupApply = "setup:apply"
	// TypeSetupDrift checks every configured account's mapping against
	// amoCRM (setup.Runner.CheckDrift). It is periodic, hourly.
	TypeSetupDrift = "setup:drift"
	// TypeSetupReap fails the runs whose apply task was lost
	// (setup.Runner.FailIdle). It is periodic, every SetupReapEvery.
	TypeSetupReap = "setup:reap"
)

// SetupReapEvery is how often lost setup runs are looked for: an admin
// waits at most SetupLostAfter plus this before running autosetup again.
const SetupReapEvery = 5 * time.Minute

// NewSetupReapTask builds TypeSetupReap (low queue, no retry: the next slot
// runs it again).
func NewSetupReapTask() *asynq.Task {
	return asynq.NewTask(TypeSetupReap, nil, asynq.Queue(QueueLow), asynq.MaxRetry(0), asynq.Timeout(time.Minute))
}

// SetupDriftEvery is how often the drift check runs.
const SetupDriftEvery = time.Hour

// SetupApplyTimeout is how long one attempt of TypeSetupApply may take.
const SetupApplyTimeout = 10 * time.Minute

// SetupRetryMaxDelay caps the delay before a TypeSetupApply retry.
const SetupRetryMaxDelay = 5 * time.Minute

// SetupLostAfter is how long a running run may go without progress before
// its task counts as lost and the run is failed. A live run is stamped at
// the start of every attempt and after every item, so it is never quiet for
// longer than an attempt (SetupApplyTimeout) or a retry's delay
// (SetupRetryMaxDelay, plus the queue's pickup); five minutes on top of the
// longer of the two leave room for a busy queue and clock skew.
const SetupLostAfter = SetupApplyTimeout + 5*time.Minute

// SetupApplyPayload is the payload of TypeSetupApply.
type SetupApplyPayload struct {
	RunID string `json:"run_id"`
}

// NewSetupApplyTask builds TypeSetupApply: critical queue (the user waits
// on the settings page), retried with backoff for amoCRM's 429s and 5xx,
// SetupApplyTimeout per attempt. Its id is the run's, so a run is one task
// forever.
func NewSetupApplyTask(p SetupApplyPayload) (Task, error) {
	if p.RunID == "" {
		return Task{}, fmt.Errorf("%w: %s: run_id is required", ErrBadPayload, TypeSetupApply)
	}
	t, err := newTask(TypeSetupApply, p, QueueCritical, 12, SetupApplyTimeout)
	t.ID = "setup:apply:" + p.RunID
	return t, err
}

// ParseSetupApply decodes a TypeSetupApply payload; a bad one is permanent.
func ParseSetupApply(t *asynq.Task) (SetupApplyPayload, error) {
	var p SetupApplyPayload
	if err := decode(t, &p); err != nil {
		return p, err
	}
	if p.RunID == "" {
		return p, fmt.Errorf("%w: %s: no run_id: %w", ErrBadPayload, t.Type(), asynq.SkipRetry)
	}
	return p, nil
}

// NewSetupDriftTask builds TypeSetupDrift (low queue, no retry: the next
// hour runs it again; half an hour for every account).
func NewSetupDriftTask() *asynq.Task {
	return asynq.NewTask(TypeSetupDrift, nil, asynq.Queue(QueueLow), asynq.MaxRetry(0), asynq.Timeout(30*time.Minute))
}

// Sync task types.
const (
	// TypeSyncAccount writes one account's pending changes to amoCRM
	// (engine.Engine.Process), one run per account at a time.
	TypeSyncAccount = "sync:account"
	// TypeSyncSweep wakes every running account with pending work. It is
	// periodic (SyncSweepEvery) and safe with several schedulers.
	TypeSyncSweep = "sync:sweep"
)

// SyncSweepEvery is how often the sweep runs.
const SyncSweepEvery = time.Minute

// SyncAccountPayload is the payload of TypeSyncAccount.
type SyncAccountPayload struct {
	AccountID int64 `json:"account_id"`
}

// NewSyncAccountTask builds TypeSyncAccount: default queue, retried with
// backoff (amoCRM's 429s and 5xx), ten minutes per attempt. Its id is
// "sync:account:{account}:{key}"; key says what woke it and is unique for
// all time ("seq:{max change_seq}" after an ingest, "sweep:{slot}",
// "start:{unix nanos}"), so a wake-up is never refused for an id a finished
// task still holds.
func NewSyncAccountTask(p SyncAccountPayload, key string) (Task, error) {
	if p.AccountID <= 0 || key == "" {
		return Task{}, fmt.Errorf("%w: %s: account_id and key are required", ErrBadPayload, TypeSyncAccount)
	}
	t, err := newTask(TypeSyncAccount, p, QueueDefault, 25, 10*time.Minute)
	t.ID = "sync:account:" + strconv.FormatInt(p.AccountID, 10) + ":" + key
	return t, err
}

// ParseSyncAccount decodes a TypeSyncAccount payload; a bad one is permanent.
func ParseSyncAccount(t *asynq.Task) (SyncAccountPayload, error) {
	var p SyncAccountPayload
	if err := decode(t, &p); err != nil {
		return p, err
	}
	if p.AccountID <= 0 {
		return p, fmt.Errorf("%w: %s: no account_id: %w", ErrBadPayload, t.Type(), asynq.SkipRetry)
	}
	return p, nil
}

// NewSyncSweepTask builds TypeSyncSweep (low queue, no retry: the next
// minute runs it again).
func NewSyncSweepTask() *asynq.Task {
	return asynq.NewTask(TypeSyncSweep, nil, asynq.Queue(QueueLow), asynq.MaxRetry(0), asynq.Timeout(time.Minute))
}
