//go:build !windows

package config

import (
	"fmt"
	"io/fs"
	"os"
)

// secretsFile holds the secrets as plain JSON protected by its mode.
const secretsFile = "secrets.json"

func seal(plain []byte) ([]byte, error)  { return plain, nil }
func unseal(data []byte) ([]byte, error) { return data, nil }

// checkSecretsPerm refuses a secrets file that group or others may access.
func checkSecretsPerm(path string, fi fs.FileInfo) error {
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("config: %s is accessible to other users (mode %04o); it holds the connector token and the database password: run `chmod 600 %s`", path, mode, path)
	}
	return nil
}

func makeStateDir(dir string) error { return os.MkdirAll(dir, 0o700) }
