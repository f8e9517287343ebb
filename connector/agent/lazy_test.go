package agent_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/connector/agent"
	"github.com/svyazka/svyazka/connector/agent/agenttest"
)

func TestLazySourceRetriesOpen(t *testing.T) {
	t.Parallel()
	opens := 0
	fake := agenttest.NewSource(3, 10)
	l := agent.NewLazySource(func(context.Context) (agent.Source, error) {
		opens++
		if opens == 1 {
			return nil, errors.New("Сервер базы данных недоступен")
		}
		return fake, nil
	})
	_, err := l.Check(context.Background())
	require.EqualError(t, err, "Сервер базы данных недоступен")
	v, err := l.Check(context.Background())
	require.NoError(t, err)
	require.NotEmpty(t, v)
	recs, _, more, err := l.Read(context.Background(), nil)
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.False(t, more)
	require.Equal(t, 2, opens)
	require.NoError(t, l.Close())
}
