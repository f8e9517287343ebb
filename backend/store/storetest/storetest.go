// Package storetest gives each test its own freshly migrated PostgreSQL
// database, so test packages and parallel tests never see each other's rows.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/svyazka/svyazka/backend/store"
)

// AdminURL is the server URL tests create their databases through:
// TEST_DATABASE_URL, else DATABASE_URL, else the local trust-auth default.
func AdminURL() string {
	for _, k := range []string{"TEST_DATABASE_URL", "DATABASE_URL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewURL creates an empty database for the test, drops it when the test ends,
// and returns its URL.
func NewURL(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, AdminURL())
	require.NoError(t, err, "connect to PostgreSQL at %s (run scripts/services.sh)", AdminURL())
	t.Cleanup(func() { _ = admin.Close(context.Background()) })

	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	name := "svz_test_" + sanitize(t.Name()) + "_" + hex.EncodeToString(suffix)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		if err != nil {
			t.Logf("storetest: drop %s: %v", name, err)
		}
	})

	u, err := url.Parse(AdminURL())
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

// New returns an open, fully migrated store on a database of the test's own.
func New(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), NewURL(t), store.Options{MaxConns: 5})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	m, err := store.NewMigrator(db.SQL())
	require.NoError(t, err)
	_, err = m.Up(context.Background())
	require.NoError(t, err)
	return db
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 30 {
			break
		}
	}
	return b.String()
}
