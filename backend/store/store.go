// Package store is Svyazka's PostgreSQL storage: the connection, the embedded
// goose migrations and the repositories (GORM row structs live here, domain
// types elsewhere; conversion happens at this edge).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/svyazka/svyazka/backend/apperr"
)

// DB is an open connection pool with its GORM handle.
type DB struct {
	gorm *gorm.DB
	sql  *sql.DB
}

// Options tune Open.
type Options struct {
	MaxConns int
	Logger   *slog.Logger
}

// Open connects to PostgreSQL at dsn and checks the connection. It fails with
// a clear error when the server does not answer within ten seconds.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	g, err := gorm.Open(postgres.Open(dsn), &gorm.Config{
		Logger:                 gormLogger{opts.Logger},
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		TranslateError:         true,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	sqlDB.SetMaxOpenConns(opts.MaxConns)
	sqlDB.SetMaxIdleConns(opts.MaxConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	db := &DB{gorm: g, sql: sqlDB}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.Ping(pingCtx); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	return db, nil
}

// Ping checks that PostgreSQL answers a query.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return fmt.Errorf("store: postgres unreachable: %w", err)
	}
	return nil
}

// Close closes the pool.
func (db *DB) Close() error { return db.sql.Close() }

// SQL returns the database/sql handle (for migrations and raw queries).
func (db *DB) SQL() *sql.DB { return db.sql }

// Gorm returns a GORM session bound to ctx.
func (db *DB) Gorm(ctx context.Context) *gorm.DB { return db.gorm.WithContext(ctx) }

// transact runs fn in one transaction; fn's error rolls it back.
func (db *DB) transact(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.gorm.WithContext(ctx).Transaction(fn)
}

// Tx is a unit of work that callers outside the store compose: the writes
// they make through it commit or roll back together. It exposes repository
// methods, never the SQL handle.
type Tx struct {
	g *gorm.DB
}

// InTx runs fn in one transaction: fn's error (or a panic) rolls back every
// write made through tx. Outbox rows added through tx wake the relay when
// the transaction commits.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	return db.transact(ctx, func(g *gorm.DB) error { return fn(&Tx{g: g}) })
}

// ErrNotFound is returned by repositories when a row does not exist. It is an
// application not_found error, so handlers may return it as is.
var ErrNotFound error = apperr.New(apperr.NotFound, "Не найдено.")

// gormLogger routes GORM's messages to slog. SQL tracing stays off, and a
// failed query is logged without its values: GORM renders the statement with
// its parameters inlined (search text, names, phones), so every literal is
// replaced by '?' and only the database's error code and constraint are kept.
type gormLogger struct{ log *slog.Logger }

func (l gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l gormLogger) Info(ctx context.Context, msg string, args ...any) {
	l.log.InfoContext(ctx, "gorm info", "component", "gorm", "format", msg)
}
func (l gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, "gorm warning", "component", "gorm", "format", msg)
}
func (l gormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, "gorm error", "component", "gorm", "format", msg)
}
func (l gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if err == nil || errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	sqlText, _ := fc()
	l.log.ErrorContext(ctx, "query failed", append([]any{"component", "gorm", "elapsed", time.Since(begin),
		"sql", RedactSQL(sqlText)}, SafeErrorAttrs(err)...)...)
}

var (
	sqlStringRE = regexp.MustCompile(`'(?:[^']|'')*'`)
	sqlNumberRE = regexp.MustCompile(`\b\d+(?:\.\d+)?\b`)
)

// RedactSQL replaces every string and number literal in a statement with '?'
// and bounds its length, so it can be logged.
func RedactSQL(sqlText string) string {
	out := sqlStringRE.ReplaceAllString(sqlText, "'?'")
	out = sqlNumberRE.ReplaceAllString(out, "?")
	if len(out) > 300 {
		out = out[:300] + "…"
	}
	return out
}

// SafeErrorAttrs describes a database error for the logs without the values
// it may quote (PostgreSQL puts them in messages such as "invalid input
// syntax for type bigint: \"…\"" and in the detail): the SQLSTATE, the
// constraint, table and column, and the message with quoted parts removed.
func SafeErrorAttrs(err error) []any {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return []any{"sqlstate", pg.Code, "constraint", pg.ConstraintName, "table", pg.TableName, "column", pg.ColumnName,
			"err", redactQuoted(pg.Message)}
	}
	return []any{"err", redactQuoted(err.Error())}
}

var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'`)

func redactQuoted(msg string) string {
	return quotedRE.ReplaceAllString(msg, `"?"`)
}
