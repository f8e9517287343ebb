package ident

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	mssql "github.com/microsoft/go-mssqldb"
)

// Sentinel errors a Reader's errors wrap; test them with errors.Is.
var (
	// ErrLogin: the server refused the login or password.
	ErrLogin = errors.New("ident: login failed")
	// ErrNoDatabase: the server has no such database (or the login may not
	// open it).
	ErrNoDatabase = errors.New("ident: database not found")
	// ErrUnreachable: the server could not be reached (address, port,
	// instance name, firewall, service stopped).
	ErrUnreachable = errors.New("ident: server unreachable")
	// ErrSchema: a required IDENT table or column is missing.
	ErrSchema = errors.New("ident: unexpected schema")
	// ErrDSN: the connection string is malformed.
	ErrDSN = errors.New("ident: bad connection string")
)

// Error is a Reader error with a short message in Russian for the clinic's IT
// person (UserMessage) besides the technical text (Error). Neither contains
// the password: the driver's text is scrubbed of it.
type Error struct {
	// Kind is one of the sentinel errors, or nil for other failures.
	Kind error
	// Message is the user-safe Russian text.
	Message string
	// Err is the underlying (scrubbed) cause.
	Err error
}

// Error returns the operation, the user message and the cause.
func (e *Error) Error() string {
	if e.Err == nil {
		return "ident: " + e.Message
	}
	return "ident: " + e.Message + ": " + e.Err.Error()
}

// UserMessage returns the Russian text safe to show in the widget.
func (e *Error) UserMessage() string { return e.Message }

// Unwrap exposes both the sentinel and the cause to errors.Is/As.
func (e *Error) Unwrap() []error {
	var out []error
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// UserMessage returns the user-safe Russian message of err when it carries
// one, otherwise a generic one.
func UserMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Ошибка чтения базы IDENT"
}

// scrubbed is an error whose text had the password removed.
type scrubbed struct {
	msg   string
	cause error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.cause }

func scrub(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &scrubbed{msg: strings.ReplaceAll(err.Error(), password, "***"), cause: err}
}

// classify wraps a driver error in an *Error with the matching sentinel and
// Russian message. database names the database for the "not found" text.
func classify(err error, database, password string) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	cause := scrub(err, password)
	mk := func(kind error, msg string) error { return &Error{Kind: kind, Message: msg, Err: cause} }

	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return mk(ErrLogin, msgLogin)
		case "3D000":
			return mk(ErrNoDatabase, noDatabaseMessage(database))
		case "42P01", "42703", "3F000":
			return mk(ErrSchema, "Структура базы IDENT не совпадает с ожидаемой: "+pgErr.Message)
		case "57P01", "57P02", "57P03", "53300":
			return mk(ErrUnreachable, msgUnreachable)
		}
		return mk(nil, msgQuery)
	}
	var msErr mssql.Error
	if errors.As(err, &msErr) {
		all := msErr.All
		if len(all) == 0 {
			all = []mssql.Error{msErr}
		}
		// 4060 "Cannot open database" comes before 18456 "Login failed".
		for _, e := range all {
			if e.Number == 4060 || e.Number == 911 {
				return mk(ErrNoDatabase, noDatabaseMessage(database))
			}
		}
		for _, e := range all {
			switch e.Number {
			case 18456, 18452, 18470, 18487, 18488:
				return mk(ErrLogin, msgLogin)
			case 208, 207:
				return mk(ErrSchema, "Структура базы IDENT не совпадает с ожидаемой: "+e.Message)
			}
		}
		return mk(nil, msgQuery)
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	if errors.As(err, &netErr) || errors.As(err, &connErr) ||
		strings.Contains(err.Error(), "unable to open tcp connection") ||
		strings.Contains(err.Error(), "unable to get instances") ||
		strings.Contains(err.Error(), "SQL Server Browser") {
		return mk(ErrUnreachable, msgUnreachable)
	}
	return mk(nil, msgQuery)
}

const (
	msgLogin       = "Неверный логин или пароль базы IDENT"
	msgUnreachable = "Сервер базы IDENT недоступен: проверьте адрес и порт"
	msgQuery       = "Ошибка чтения базы IDENT"
)

func noDatabaseMessage(database string) string {
	if database == "" {
		database = defaultDatabase
	}
	return fmt.Sprintf("База данных %s не найдена на сервере", database)
}

func missingColumnError(column string) error {
	return &Error{
		Kind:    ErrSchema,
		Message: fmt.Sprintf("В базе IDENT нет обязательного столбца %s — версия IDENT не поддерживается, обратитесь в поддержку", column),
	}
}
