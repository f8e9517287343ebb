package ident

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	mssql "github.com/microsoft/go-mssqldb"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store/storetest"
)

func TestSQLServerDSN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, host, path, database string
	}{
		{"Defaults", "sqlserver://", "127.0.0.1:15000", "", "PZ"},
		{"Full", "sqlserver://u:p@10.0.0.5:1433?database=PZ2", "10.0.0.5:1433", "", "PZ2"},
		{"InstancePath", "sqlserver://pc/PZSQLSERVER", "pc", "/PZSQLSERVER", "PZ"},
		{"InstanceParam", "sqlserver://pc?instance=PZSQLSERVER", "pc", "/PZSQLSERVER", "PZ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, database, _, err := sqlServerDSN(tc.in)
			require.NoError(t, err)
			u, err := url.Parse(out)
			require.NoError(t, err)
			require.Equal(t, tc.host, u.Host)
			require.Equal(t, tc.path, u.Path)
			require.Equal(t, tc.database, database)
			require.Equal(t, tc.database, u.Query().Get("database"))
			if u.User.Username() == "" {
				t.Fatal("no user")
			}
		})
	}
	out, _, password, err := sqlServerDSN("sqlserver://admin:pa%40ss@h")
	require.NoError(t, err)
	require.Equal(t, "pa@ss", password)
	u, _ := url.Parse(out)
	require.Equal(t, "admin", u.User.Username())
	_, _, _, err = sqlServerDSN("sqlserver://u:sec ret@h:bad port")
	require.ErrorIs(t, err, ErrDSN)
	require.NotContains(t, err.Error(), "sec ret")
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"PgWrongPassword", &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}, ErrLogin},
		{"PgNoDatabase", &pgconn.PgError{Code: "3D000"}, ErrNoDatabase},
		{"MssqlLogin", mssql.Error{Number: 18456, Message: "Login failed for user 'readonly_user'."}, ErrLogin},
		{"MssqlNoDatabase", mssql.Error{Number: 18456, All: []mssql.Error{{Number: 4060}, {Number: 18456}}}, ErrNoDatabase},
		{"MssqlTCP", errors.New("unable to open tcp connection with host '127.0.0.1:15000': dial tcp: connection refused"), ErrUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.err, "PZ", "hunter2")
			require.ErrorIs(t, err, tc.want)
			var e *Error
			require.ErrorAs(t, err, &e)
			require.NotEmpty(t, e.UserMessage())
		})
	}
	err := classify(errors.New("login hunter2 failed: connection refused"), "PZ", "hunter2")
	require.NotContains(t, err.Error(), "hunter2")
}

func TestSessionIsReadOnly(t *testing.T) {
	t.Parallel()
	r, err := Open(context.Background(), storetest.NewURL(t))
	require.NoError(t, err)
	defer r.Close()
	_, err = r.db.ExecContext(context.Background(), "CREATE TABLE x (id int)")
	require.ErrorContains(t, err, "read-only")
}

func TestParseBirthday(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"05.03.1985":          "1985-03-05",
		"5.3.1985":            "1985-03-05",
		"1985-03-05":          "1985-03-05",
		"1985-03-05 00:00:00": "1985-03-05",
		"05.03.1985 0:00:00":  "1985-03-05",
		"01.01.1900":          "",
		"31.02.1985":          "",
		"05.03.2030":          "",
		"":                    "",
		"не помнит":           "",
	} {
		require.Equal(t, want, parseBirthday(in, now), in)
	}
}

func TestIDSet(t *testing.T) {
	t.Parallel()
	var s idSet
	for _, id := range []int64{100, 5, 7, 2000, 64} {
		s.Add(id)
	}
	var got []int64
	s.Each(func(id int64) bool { got = append(got, id); return true })
	require.Equal(t, []int64{5, 7, 64, 100, 2000}, got)
	require.True(t, s.Has(64))
	require.False(t, s.Has(65))
	require.False(t, s.Has(1))
	require.Equal(t, 5, s.Len())
}

func TestRowVersionRoundTrip(t *testing.T) {
	t.Parallel()
	v, err := decodeRowVersion([]byte{0, 0, 0, 0, 0, 0xC4, 0x13, 0x23})
	require.NoError(t, err)
	require.Equal(t, uint64(0xC41323), v)
	require.Equal(t, []byte{0, 0, 0, 0, 0, 0xC4, 0x13, 0x23}, encodeRowVersion(v))
	_, err = decodeRowVersion([]byte{1, 2})
	require.Error(t, err)
}
