package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/engine"
	"github.com/svyazka/svyazka/backend/eventlog"
)

// TestStopTwiceIsNoOp: `svyazka admin stop` and ОСТАНОВИТЬ reach the state
// asked for; a second stop changes nothing and logs nothing.
func TestStopTwiceIsNoOp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.start(t, "")
	c := engine.Control{Store: e.db, Now: time.Now}
	require.NoError(t, c.Stop(ctx, e.acc, "support"))
	require.NoError(t, c.Stop(ctx, e.acc, "support"), "stopping a stopped sync is not an error")
	evs, _, err := e.db.ListEvents(ctx, eventlog.Filter{AccountID: e.acc.ID, Types: []eventlog.Type{eventlog.TypeSyncStopped}})
	require.NoError(t, err)
	require.Len(t, evs, 1, "one stop, one event")
}
