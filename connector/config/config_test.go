package config

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	want := Config{BackendURL: "https://app.example.ru", Since: "2024-01-31", Poll: "10s", MaxOutboxMB: 512,
		InstanceID: "id-1", Token: "svz_secret", SourceDSN: "sqlserver://readonly_user:p%40ss@127.0.0.1:15000?database=PZ"}
	require.NoError(t, Save(dir, want))
	got, err := Load(dir)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Secrets are not in the plain config file.
	plain, err := os.ReadFile(filepath.Join(dir, configFile))
	require.NoError(t, err)
	require.NotContains(t, string(plain), "svz_secret")
	require.NotContains(t, string(plain), "p%40ss")
	require.NotContains(t, want.String(), "svz_secret")
	require.NotContains(t, want.String(), "p%40ss")
}

func TestLoadMissingIsEmpty(t *testing.T) {
	t.Parallel()
	c, err := Load(filepath.Join(t.TempDir(), "nothing"))
	require.NoError(t, err)
	require.Equal(t, Config{}, c)
}

func TestInstanceIDIsMadeOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := LoadOrInit(dir)
	require.NoError(t, err)
	require.Len(t, a.InstanceID, 36)
	b, err := LoadOrInit(dir)
	require.NoError(t, err)
	require.Equal(t, a.InstanceID, b.InstanceID)
}

func TestSecretsReadableByOthersAreRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the directory ACL protects secrets on Windows")
	}
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, Save(dir, Config{Token: "svz_x"}))
	path := filepath.Join(dir, secretsFile)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = Load(dir)
	require.ErrorContains(t, err, "chmod 600")
	// Saving again repairs the mode.
	require.NoError(t, Save(dir, Config{Token: "svz_x"}))
	_, err = Load(dir)
	require.NoError(t, err)
}

func TestValidateRun(t *testing.T) {
	t.Parallel()
	ok := Config{BackendURL: "https://app.example.ru", Token: "t", SourceDSN: "sqlserver://x"}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"OK":           {func(*Config) {}, ""},
		"Missing":      {func(c *Config) { c.Token, c.SourceDSN = "", "" }, "--token, --source"},
		"BadURL":       {func(c *Config) { c.BackendURL = "app.example.ru" }, "not an http(s) URL"},
		"BadSince":     {func(c *Config) { c.Since = "31.01.2024" }, "YYYY-MM-DD"},
		"BadPoll":      {func(c *Config) { c.Poll = "5" }, "duration"},
		"NegativeSize": {func(c *Config) { c.MaxOutboxMB = -1 }, "negative"},
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.ValidateRun()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDefaultStateDir(t *testing.T) {
	t.Parallel()
	env := func(k string) string { return map[string]string{"ProgramData": `D:\PD`}[k] }
	require.Equal(t, `D:\PD\Svyazka`, DefaultStateDir("windows", env))
	require.Equal(t, `C:\ProgramData\Svyazka`, DefaultStateDir("windows", func(string) string { return "" }))
	require.Equal(t, "svyazka-connector-state", DefaultStateDir("linux", env))
}
