package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/redistest"
	"github.com/svyazka/svyazka/backend/store/storetest"
	"github.com/svyazka/svyazka/widget"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "svyazka-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "svyazka")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// command runs the binary with exactly the given environment.
func command(env map[string]string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

func TestHelpListsSubcommands(t *testing.T) {
	t.Parallel()
	out, err := command(nil, "help").Output()
	require.NoError(t, err)
	for _, sub := range []string{"api", "worker", "migrate up", "migrate down", "migrate status", "run"} {
		require.Contains(t, string(out), "\n  "+sub+" ")
	}
	cmd := command(nil, "frobnicate")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	require.Equal(t, 2, exitCode(err), "usage mistakes exit 2")
	require.Contains(t, stderr.String(), `unknown command "frobnicate"`)
}

func TestBadConfigExitsWithOneLine(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"MalformedDatabaseURL": {map[string]string{"APP_ENV": "development", "DATABASE_URL": "postgres//nohost"}, "svyazka: config: DATABASE_URL: "},
		"ShortEncryptionKey":   {map[string]string{"APP_ENV": "development", "ENCRYPTION_KEY": "dG9vIHNob3J0"}, "svyazka: config: ENCRYPTION_KEY: must decode to 32 bytes, got 9"},
		"ProductionWithoutKey": {map[string]string{"APP_ENV": "production"}, "svyazka: config: ENCRYPTION_KEY: is required in production"},
		"ProductionByDefault":  {map[string]string{}, "svyazka: config: ENCRYPTION_KEY: is required in production"},
		"UnreachableDatabase": {map[string]string{"APP_ENV": "development", "DATABASE_URL": "postgres://postgres:pw@127.0.0.1:1/x?sslmode=disable&password=qsecret"},
			"svyazka: postgres at postgres://postgres:xxxxx@127.0.0.1:1/x?password=xxxxx&sslmode=disable: "},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, sub := range []string{"api", "migrate"} {
				args := []string{sub}
				if sub == "migrate" {
					args = append(args, "up")
				}
				cmd := command(tc.env, args...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				require.Equal(t, 1, exitCode(err), stderr.String())
				last := lastLine(stderr.String())
				require.True(t, strings.HasPrefix(last, tc.want), "got %q", last)
				require.NotContains(t, stderr.String(), "goroutine ", "no stack trace")
				require.NotContains(t, stderr.String(), "panic")
			}
		})
	}
}

func TestMigrateSubcommands(t *testing.T) {
	t.Parallel()
	env := map[string]string{"APP_ENV": "development", "DATABASE_URL": storetest.NewURL(t), "REDIS_URL": redisURL(t)}
	run := func(args ...string) string {
		out, err := command(env, args...).Output()
		require.NoError(t, err)
		return string(out)
	}
	status := run("migrate", "status")
	n := strings.Count(status, "pending")
	require.Positive(t, n)
	require.Equal(t, fmt.Sprintf("applied %d migration(s)\n", n), run("migrate", "up"))
	require.Contains(t, run("migrate", "status"), "applied  00001_initial.sql")
	require.NotContains(t, run("migrate", "status"), "pending")
	for range n {
		require.Contains(t, run("migrate", "down"), "rolled back 1 migration")
	}
	require.Contains(t, run("migrate", "down"), "nothing to roll back")
	require.Equal(t, fmt.Sprintf("applied %d migration(s)\n", n), run("migrate", "up"))
}

// TestRunReadinessFollowsRedis starts `svyazka run` against a Redis server of
// its own, stops that Redis and starts it again: /readyz goes 200 → 503
// naming redis → 200, with no restart of the service.
func TestRunReadinessFollowsRedis(t *testing.T) {
	t.Parallel()
	redisPort := freePort(t)
	stopRedis := startRedis(t, redisPort)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := map[string]string{
		"DATABASE_URL": storetest.NewURL(t),
		"REDIS_URL":    fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort),
		"HTTP_ADDR":    addr,
		"SANDBOX_ADDR": fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"LOG_LEVEL":    "warn",
	}
	cmd := command(env, "run")
	cmd.Dir = t.TempDir()
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { stopProcess(t, cmd, &stderr) })

	ready := func() (int, map[string]any) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	require.Eventually(t, func() bool { s, _ := ready(); return s == http.StatusOK }, 30*time.Second, 50*time.Millisecond,
		"service never became ready:\n%s", stderr.String())
	require.Regexp(t, `applied \d+ migration\(s\)`, stdout.String())
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "API:                         http://"+addr) },
		30*time.Second, 50*time.Millisecond, "the demo is installed and its URLs printed:\n%s\n%s", stdout.String(), stderr.String())

	stopRedis()
	var body map[string]any
	require.Eventually(t, func() bool {
		var s int
		s, body = ready()
		return s == http.StatusServiceUnavailable
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, []any{"redis"}, body["failing"])
	require.Equal(t, "ok", body["checks"].(map[string]any)["postgres"])

	startRedis(t, redisPort)
	require.Eventually(t, func() bool { s, _ := ready(); return s == http.StatusOK }, 30*time.Second, 50*time.Millisecond,
		"service did not recover after Redis came back")
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startRedis(t *testing.T, port int) (stop func()) {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is needed (scripts/services.sh installs it)")
	cmd := exec.Command(path, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	return stop
}

func redisURL(t *testing.T) string {
	o := redistest.New(t)
	return fmt.Sprintf("redis://%s/%d", o.Addr, o.DB)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestWidgetArchiveCommand(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "widget.zip")
	stdout, err := command(map[string]string{"PUBLIC_URL": "https://api.svyazka.ru"}, "widget-archive", "-o", out).Output()
	require.NoError(t, err)
	require.Contains(t, string(stdout), "wrote "+out)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Empty(t, widget.ValidateZip(bytes.NewReader(b), int64(len(b))))
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err)
	for _, f := range zr.File {
		if f.Name == "script.js" {
			rc, err := f.Open()
			require.NoError(t, err)
			js, err := io.ReadAll(rc)
			require.NoError(t, err)
			require.Contains(t, string(js), "'https://api.svyazka.ru'")
		}
	}
	err = command(map[string]string{"PUBLIC_URL": "not a url"}, "widget-archive", "-o", out).Run()
	require.Equal(t, 1, exitCode(err))
}
