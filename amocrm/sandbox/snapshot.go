package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// loadSnapshot reads the state saved at path; a missing file or empty path
// yields nil, nil.
func loadSnapshot(path string) (*state, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: load snapshot %s: %w", path, err)
	}
	st := newState()
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("sandbox: decode snapshot %s: %w", path, err)
	}
	return st, nil
}

// saveSnapshot writes the state atomically (temp file, then rename).
func (s *Sandbox) saveSnapshot() error {
	path := s.cfg.SnapshotPath
	if path == "" {
		return nil
	}
	s.mu.Lock()
	data, err := json.Marshal(s.st)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sandbox: encode snapshot: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sandbox-snapshot-*")
	if err != nil {
		return fmt.Errorf("sandbox: save snapshot %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("sandbox: save snapshot %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("sandbox: save snapshot %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("sandbox: save snapshot %s: %w", path, err)
	}
	return nil
}
