// Package ident reads a clinic's IDENT database (Microsoft SQL Server,
// database "PZ") for the on-premises connector and turns its rows into
// protocol.Records. It also reads the PostgreSQL stand-in used by tests and
// the demo clinic (schema dbo, IDENT's quoted names, spec §13).
//
// What it promises:
//   - It never writes: it only runs SELECTs, and opens the session read-only
//     where the driver allows (PostgreSQL: default_transaction_read_only=on;
//     SQL Server: the login is expected to be read-only, the reader sets the
//     application name only).
//   - Check probes INFORMATION_SCHEMA.COLUMNS: a missing required column
//     fails with ErrSchema naming it; a missing optional column (Email, Sex,
//     RowVersion, ParentSNP, …) is read as NULL.
//   - Every error wraps one of ErrLogin, ErrNoDatabase, ErrUnreachable,
//     ErrSchema (or none for other failures), carries a short Russian
//     UserMessage for the clinic's IT person, and never contains the password.
//   - Read pages through IDENT with a cursor the caller stores together with
//     the records, so a restart resumes exactly (see Read).
//   - Queries use only what SQL Server 2012 has: no STRING_AGG, TRIM or
//     CONCAT_WS; paging is keyset with TOP/LIMIT.
package ident

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/svyazka/svyazka/connector/protocol"
)

// Connection defaults for a clinic's IDENT (seed 004: the connector's own
// instructions), used when the DSN leaves a part out.
const (
	defaultDatabase = "PZ"
	defaultPort     = "15000"
	defaultUser     = "readonly_user"
	defaultHost     = "127.0.0.1"
	applicationName = "svyazka-connector"
)

// Defaults of Options.
const (
	DefaultWindow             = 365 * 24 * time.Hour
	DefaultPageSize           = 500
	DefaultPagePause          = 50 * time.Millisecond
	DefaultRescanEvery        = 30 * time.Minute
	DefaultPatientRescanEvery = 24 * time.Hour
	DefaultDictionaryEvery    = 5 * time.Minute
	DefaultOverlap            = 5 * time.Minute
)

// Options tune a Reader. The zero value means every default.
type Options struct {
	// Since is the start of the reception window (naive local wall-clock
	// time, compared with PlanStart). Zero: Window before now, moving.
	Since time.Time
	// Window is the window's length when Since is zero (DefaultWindow).
	Window time.Duration
	// PageSize bounds the records of one Read (DefaultPageSize, at most
	// protocol.MaxRecordsPerBatch).
	PageSize int
	// PagePause is the least time between the queries of two Reads that
	// follow each other while more is true, to be gentle on a production
	// server (DefaultPagePause; negative: none).
	PagePause time.Duration
	// RescanEvery is how often the window is re-read in full to re-emit
	// current rows and report deleted receptions (DefaultRescanEvery).
	RescanEvery time.Duration
	// PatientRescanEvery is how often a re-scan also re-reads every patient,
	// which catches Persons edits that do not move Patients.DateTimeChanged
	// (DefaultPatientRescanEvery).
	PatientRescanEvery time.Duration
	// DictionaryEvery is how often an incremental cycle re-reads doctors,
	// branches, chairs and cancel reasons and sends those that changed
	// (DefaultDictionaryEvery).
	DictionaryEvery time.Duration
	// Overlap is how far back DateTimeChanged polling reaches behind the last
	// seen value, because IDENT's stamps come from different clocks
	// (DefaultOverlap).
	Overlap time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.PageSize > protocol.MaxRecordsPerBatch {
		o.PageSize = protocol.MaxRecordsPerBatch
	}
	if o.PageSize < 2 {
		o.PageSize = 2
	}
	if o.PagePause == 0 {
		o.PagePause = DefaultPagePause
	}
	if o.RescanEvery <= 0 {
		o.RescanEvery = DefaultRescanEvery
	}
	if o.PatientRescanEvery <= 0 {
		o.PatientRescanEvery = DefaultPatientRescanEvery
	}
	if o.DictionaryEvery <= 0 {
		o.DictionaryEvery = DefaultDictionaryEvery
	}
	if o.Overlap <= 0 {
		o.Overlap = DefaultOverlap
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Reader reads one IDENT database. Check and Read may run concurrently.
type Reader struct {
	db       *sql.DB
	d        dialect
	database string
	password string
	opts     Options

	mu       sync.Mutex
	present  map[string]bool // "Table.Column" → exists; nil until probed
	lastRead time.Time
	lastMore bool
}

// Open opens a Reader with default Options; see OpenOptions.
func Open(ctx context.Context, dsn string) (*Reader, error) {
	return OpenOptions(ctx, dsn, Options{})
}

// OpenOptions opens a Reader on dsn and pings the server.
//
// dsn is either sqlserver://user:pass@host:port?database=PZ (a real IDENT;
// missing parts default to user readonly_user, host 127.0.0.1, port 15000
// and database PZ; a named instance is sqlserver://host/PZSQLSERVER or
// ?instance=PZSQLSERVER, and then no port is assumed so the SQL Browser
// resolves it; any other go-mssqldb parameter passes through) or
// postgres://… (the PostgreSQL stand-in).
//
// Errors are *Error values wrapping ErrDSN, ErrLogin, ErrNoDatabase or
// ErrUnreachable.
func OpenOptions(ctx context.Context, dsn string, opts Options) (*Reader, error) {
	r := &Reader{opts: opts.withDefaults()}
	switch {
	case strings.HasPrefix(dsn, "sqlserver://"):
		conn, database, password, err := sqlServerDSN(dsn)
		if err != nil {
			return nil, err
		}
		connector, err := mssql.NewConnector(conn)
		if err != nil {
			return nil, &Error{Kind: ErrDSN, Message: msgDSN, Err: scrub(err, password)}
		}
		r.db, r.d, r.database, r.password = sql.OpenDB(connector), sqlServer, database, password
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, &Error{Kind: ErrDSN, Message: msgDSN, Err: scrub(err, passwordOf(dsn))}
		}
		cfg.RuntimeParams["default_transaction_read_only"] = "on"
		if cfg.RuntimeParams["application_name"] == "" {
			cfg.RuntimeParams["application_name"] = applicationName
		}
		r.db, r.d, r.database, r.password = stdlib.OpenDB(*cfg), postgres, cfg.Database, cfg.Password
	default:
		return nil, &Error{Kind: ErrDSN, Message: msgDSN}
	}
	r.db.SetMaxOpenConns(2)
	r.db.SetMaxIdleConns(2)
	r.db.SetConnMaxIdleTime(5 * time.Minute)
	if err := r.db.PingContext(ctx); err != nil {
		_ = r.db.Close()
		return nil, r.classify(err)
	}
	return r, nil
}

const msgDSN = "Неверная строка подключения к базе IDENT"

// sqlServerDSN fills in the seed-004 defaults and returns the go-mssqldb
// URL, the database and the password (to scrub it from errors).
func sqlServerDSN(raw string) (dsn, database, password string, err error) {
	u, perr := url.Parse(raw)
	if perr != nil {
		// url's error repeats the input, password included.
		return "", "", "", &Error{Kind: ErrDSN, Message: msgDSN}
	}
	user := defaultUser
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			user = name
		}
		password, _ = u.User.Password()
	}
	u.User = url.UserPassword(user, password)
	if password == "" {
		u.User = url.User(user)
	}

	q := u.Query()
	instance := strings.Trim(u.Path, "/")
	for k, v := range q {
		if strings.EqualFold(k, "instance") {
			if instance == "" && len(v) > 0 {
				instance = v[0]
			}
			q.Del(k)
		}
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = defaultHost
	}
	if port == "" && instance == "" {
		port = defaultPort
	}
	u.Host = host
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	u.Path = ""
	if instance != "" {
		u.Path = "/" + instance
	}
	for k, v := range q {
		if strings.EqualFold(k, "database") && len(v) > 0 && v[0] != "" {
			database = v[0]
		}
	}
	if database == "" {
		database = defaultDatabase
		for k := range q {
			if strings.EqualFold(k, "database") {
				q.Del(k)
			}
		}
		q.Set("database", database)
	}
	if !hasKey(q, "app name") {
		q.Set("app name", applicationName)
	}
	u.RawQuery = q.Encode()
	return u.String(), database, password, nil
}

func hasKey(q url.Values, key string) bool {
	for k := range q {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

func passwordOf(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// Close closes the connection pool.
func (r *Reader) Close() error { return r.db.Close() }

func (r *Reader) classify(err error) error { return classify(err, r.database, r.password) }

// Check connects, returns the server's version (its first line) and probes
// the IDENT columns the reader needs. Errors: ErrLogin, ErrNoDatabase,
// ErrUnreachable, or ErrSchema naming a missing required table or column.
func (r *Reader) Check(ctx context.Context) (string, error) {
	var version string
	if err := r.db.QueryRowContext(ctx, r.d.versionQuery()).Scan(&version); err != nil {
		return "", r.classify(err)
	}
	version = strings.TrimSpace(strings.SplitN(version, "\n", 2)[0])
	present, err := r.probe(ctx)
	if err != nil {
		return version, err
	}
	r.mu.Lock()
	r.present = present
	r.mu.Unlock()
	return version, nil
}

func (r *Reader) probe(ctx context.Context) (map[string]bool, error) {
	tbls := tables()
	args := make([]any, 0, len(tbls)+1)
	args = append(args, schemaName)
	for _, t := range tbls {
		args = append(args, t)
	}
	q := "SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = " +
		r.d.ph(1) + " AND TABLE_NAME IN (" + r.d.phs(2, len(tbls)) + ")"
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, r.classify(err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, r.classify(err)
		}
		found[r.key(t, c)] = true
		found[r.key(t, "")] = true
	}
	if err := rows.Err(); err != nil {
		return nil, r.classify(err)
	}
	present := map[string]bool{}
	var missing []string
	for _, c := range columns {
		if !found[r.key(c.table, "")] {
			return nil, &Error{Kind: ErrSchema, Message: fmt.Sprintf(
				"В базе %s нет таблицы IDENT %s.%s — проверьте, что указана база IDENT", r.database, schemaName, c.table)}
		}
		ok := found[r.key(c.table, c.name)]
		present[c.table+"."+c.name] = ok
		if !ok && c.required {
			missing = append(missing, c.table+"."+c.name)
		}
	}
	if len(missing) > 0 {
		e := missingColumnError(missing[0])
		if len(missing) > 1 {
			e.(*Error).Message += fmt.Sprintf(" (и ещё %d)", len(missing)-1)
		}
		return nil, e
	}
	return present, nil
}

func (r *Reader) key(table, col string) string {
	k := table + "." + col
	if r.d.caseInsensitive {
		return strings.ToLower(k)
	}
	return k
}

// has reports whether an optional column exists (after Check).
func (r *Reader) has(table, col string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.present[table+"."+col]
}

func (r *Reader) ensureProbed(ctx context.Context) error {
	r.mu.Lock()
	done := r.present != nil
	r.mu.Unlock()
	if done {
		return nil
	}
	_, err := r.Check(ctx)
	return err
}
