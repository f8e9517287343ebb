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
	"time"

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

// Tx runs fn in one transaction; fn's error rolls it back.
func (db *DB) Tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.gorm.WithContext(ctx).Transaction(fn)
}

// ErrNotFound is returned by repositories when a row does not exist. It is an
// application not_found error, so handlers may return it as is.
var ErrNotFound error = apperr.New(apperr.NotFound, "Не найдено.")

// gormLogger routes GORM's messages to slog; slow-query and SQL tracing stay off
// so that secrets bound as parameters never reach the logs.
type gormLogger struct{ log *slog.Logger }

func (l gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l gormLogger) Info(ctx context.Context, msg string, args ...any) {
	l.log.InfoContext(ctx, fmt.Sprintf(msg, args...), "component", "gorm")
}
func (l gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(msg, args...), "component", "gorm")
}
func (l gormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, fmt.Sprintf(msg, args...), "component", "gorm")
}
func (l gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) && !errors.Is(err, context.Canceled) {
		sqlText, _ := fc()
		if len(sqlText) > 200 {
			sqlText = sqlText[:200] + "…"
		}
		l.log.ErrorContext(ctx, "query failed", "component", "gorm", "err", err, "elapsed", time.Since(begin), "sql", sqlText)
	}
}
