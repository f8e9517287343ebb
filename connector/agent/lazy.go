package agent

import (
	"context"
	"errors"
	"sync"

	"github.com/svyazka/svyazka/connector/protocol"
)

// LazySource is a Source that opens the real one on first use, retrying the
// open on every call until it succeeds, so a database that is down when the service
// starts shows as "disconnected" in heartbeats instead of stopping the
// connector. Open errors are returned from Check and Read as they are.
type LazySource struct {
	open func(ctx context.Context) (Source, error)

	mu  sync.Mutex
	src Source
}

// NewLazySource returns a LazySource over open.
func NewLazySource(open func(ctx context.Context) (Source, error)) *LazySource {
	return &LazySource{open: open}
}

func (l *LazySource) get(ctx context.Context) (Source, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.src != nil {
		return l.src, nil
	}
	src, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("agent: source opener returned no source")
	}
	l.src = src
	return src, nil
}

// Check implements Source.
func (l *LazySource) Check(ctx context.Context) (string, error) {
	src, err := l.get(ctx)
	if err != nil {
		return "", err
	}
	return src.Check(ctx)
}

// Read implements Source.
func (l *LazySource) Read(ctx context.Context, cursor []byte) ([]protocol.Record, []byte, bool, error) {
	src, err := l.get(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	return src.Read(ctx, cursor)
}

// Close closes the opened source, if any.
func (l *LazySource) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.src == nil {
		return nil
	}
	err := l.src.Close()
	l.src = nil
	return err
}
