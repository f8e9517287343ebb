package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/conntoken"
	"github.com/svyazka/svyazka/backend/store"
	"github.com/svyazka/svyazka/backend/store/storetest"
)

// TestAdminCommands runs `svyazka admin` with production settings (the
// commands decrypt nothing, but read the same validated configuration as
// the service) and no Redis at all.
func TestAdminCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewURL(t)
	env := map[string]string{
		"APP_ENV": "production", "DATABASE_URL": dbURL, "REDIS_URL": "redis://127.0.0.1:1/0",
		"ENCRYPTION_KEY": "YWRtaW4tY29tbWFuZHMtdGVzdC1rZXktMzItYnl0ZXM=", "AMOCRM_CLIENT_ID": "client-id",
		"AMOCRM_CLIENT_SECRET": "a-real-looking-secret", "MAX_DATABASES_PER_ACCOUNT": "2",
	}
	run := func(args ...string) (stdout, stderr string, code int) {
		cmd := command(env, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), exitCode(err)
	}
	_, stderr, code := run("migrate", "up")
	require.Equal(t, 0, code, stderr)

	db, err := store.Open(ctx, dbURL, store.Options{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	acc, _, err := db.InstallAccount(ctx, store.InstallInput{AmoAccountID: 30123456, Subdomain: "demo-clinic",
		BaseDomain: "amocrm.ru", Name: "Demo", TrialDays: 14, Now: time.Now()})
	require.NoError(t, err)

	t.Run("AddDatabase", func(t *testing.T) {
		for _, args := range [][]string{
			{"admin", "database", "add", "demo-clinic", "--name", "Филиал на Ленина"},
			{"admin", "database", "add", "--time-zone", "Asia/Yekaterinburg", "--name=Second", "30123456"},
		} {
			stdout, stderr, code := run(args...)
			require.Equal(t, 0, code, stderr)
			require.Empty(t, stderr, "quiet unless LOG_LEVEL is set")
			token := lastLine(stdout)
			require.Regexp(t, `^svz_[A-Za-z0-9_-]{43}$`, token)
			d, owner, err := db.ConnectorDatabase(ctx, conntoken.Hash(token))
			require.NoError(t, err, "the printed token authenticates")
			require.Equal(t, acc.ID, owner.ID)
			require.Contains(t, stdout, d.Name)
		}
		dbs, err := db.ListDatabases(ctx, acc.ID)
		require.NoError(t, err)
		require.Len(t, dbs, 2)
		require.Equal(t, "Europe/Moscow", dbs[0].TimeZone, "DEFAULT_TIME_ZONE")
		require.Equal(t, "Asia/Yekaterinburg", dbs[1].TimeZone)
	})

	t.Run("Status", func(t *testing.T) {
		stdout, stderr, code := run("admin", "status", "demo-clinic")
		require.Equal(t, 0, code, stderr)
		dec := json.NewDecoder(strings.NewReader(stdout))
		var st struct {
			Account struct {
				AmoAccountID int64  `json:"amo_account_id"`
				Subdomain    string `json:"subdomain"`
			} `json:"account"`
			Subscription map[string]any   `json:"subscription"`
			Databases    []map[string]any `json:"databases"`
		}
		require.NoError(t, dec.Decode(&st))
		require.False(t, dec.More(), "one JSON object")
		require.Equal(t, int64(30123456), st.Account.AmoAccountID)
		require.Equal(t, "trial", st.Subscription["status"])
		require.Len(t, st.Databases, 2)
		for _, d := range st.Databases {
			for _, key := range []string{"name", "connector", "database", "time_zone", "last_seen_at", "received"} {
				require.Contains(t, d, key)
			}
			require.Equal(t, "disconnected", d["connector"])
			require.Equal(t, "disconnected", d["database"])
			require.Nil(t, d["last_seen_at"])
			require.Equal(t, map[string]any{"patients": 0.0, "appointments": 0.0}, d["received"])
		}
		byID, _, code := run("admin", "status", "30123456")
		require.Equal(t, 0, code)
		// The two runs may straddle a second: compare all but the check time.
		withoutTime := func(raw string) map[string]any {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(raw), &m))
			delete(m, "checked_at")
			return m
		}
		require.Equal(t, withoutTime(stdout), withoutTime(byID), "by id and by subdomain: the same account")
	})

	t.Run("Errors", func(t *testing.T) {
		for name, tc := range map[string]struct {
			args []string
			want string
		}{
			"UnknownAccount":       {[]string{"admin", "status", "no-such-clinic"}, `svyazka: admin status: no account with amoCRM id or subdomain "no-such-clinic"`},
			"UnknownAccountForAdd": {[]string{"admin", "database", "add", "404", "--name", "X"}, `svyazka: admin database add: no account with amoCRM id or subdomain "404"`},
			"BadZone":              {[]string{"admin", "database", "add", "demo-clinic", "--name", "X", "--time-zone", "Moscow"}, `svyazka: admin database add: unknown time zone "Moscow"`},
			"EmptyName":            {[]string{"admin", "database", "add", "demo-clinic", "--name", ""}, "svyazka: admin database add: database name must be 1 to 100 characters"},
			"LongName":             {[]string{"admin", "database", "add", "demo-clinic", "--name", strings.Repeat("n", 101)}, "svyazka: admin database add: database name must be"},
			"CapReached":           {[]string{"admin", "database", "add", "demo-clinic", "--name", "Third"}, "svyazka: admin database add: account demo-clinic (amoCRM 30123456) already has the maximum of 2 databases"},
		} {
			t.Run(name, func(t *testing.T) {
				stdout, stderr, code := run(tc.args...)
				require.Equal(t, 1, code, stderr)
				require.Empty(t, stdout)
				require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
				require.True(t, strings.HasPrefix(stderr, tc.want), "got %q", stderr)
			})
		}
	})
}

func TestAdminUsage(t *testing.T) {
	t.Parallel()
	// No configuration: usage is checked before anything connects.
	for name, args := range map[string][]string{
		"NoCommand":      {"admin"},
		"UnknownCommand": {"admin", "frobnicate"},
		"DatabaseNoAdd":  {"admin", "database"},
		"DatabaseRemove": {"admin", "database", "remove", "demo"},
		"AddNoName":      {"admin", "database", "add", "demo-clinic"},
		"AddNoAccount":   {"admin", "database", "add", "--name", "X"},
		"AddTwoAccounts": {"admin", "database", "add", "a", "b", "--name", "X"},
		"AddUnknownFlag": {"admin", "database", "add", "demo", "--name", "X", "--zone", "UTC"},
		"StatusNoArg":    {"admin", "status"},
		"StatusTwoArgs":  {"admin", "status", "a", "b"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := command(nil, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			require.Equal(t, 2, exitCode(err), stderr.String())
			require.True(t, strings.HasPrefix(stderr.String(), "svyazka: usage: "), stderr.String())
			require.Contains(t, stderr.String(), "admin database add ACCOUNT --name NAME [--time-zone ZONE]", "the usage text follows")
		})
	}
	out, err := command(nil, "admin", "help").Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "database add ACCOUNT --name NAME [--time-zone ZONE]")
	require.Contains(t, string(out), "status ACCOUNT")
	out, err = command(nil, "help").Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "\n  admin status ACCOUNT")
}
