package widget

import (
	"testing/fstest"
)

// memFS holds archive files read from a zip.
type memFS map[string][]byte

func (m memFS) fs() fstest.MapFS {
	out := fstest.MapFS{}
	for name, b := range m {
		out[name] = &fstest.MapFile{Data: b}
	}
	return out
}
