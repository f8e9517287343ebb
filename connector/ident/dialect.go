package ident

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// dialect is the little that differs between SQL Server (a real IDENT) and the
// PostgreSQL stand-in (spec §13). The query text itself is shared and built
// from the names in schema.go; only placeholders, quoting, the row limit, the
// cast to text, the version probe and MIN_ACTIVE_ROWVERSION() go through here.
//
// Paging is keyset everywhere (WHERE ID > @last ORDER BY ID with TOP/LIMIT):
// it works on every SQL Server version, never rescans skipped rows and is
// stable while rows are inserted.
type dialect struct {
	name string
	// caseInsensitive: SQL Server's default collation matches identifiers
	// regardless of case (one real source writes SurName); PostgreSQL's quoted
	// names must match exactly.
	caseInsensitive bool
}

var (
	sqlServer = dialect{name: "sqlserver", caseInsensitive: true}
	postgres  = dialect{name: "postgres"}
)

func (d dialect) isSQLServer() bool { return d.name == sqlServer.name }

// ph is the n-th (1-based) bind placeholder.
func (d dialect) ph(n int) string {
	if d.isSQLServer() {
		return "@p" + strconv.Itoa(n)
	}
	return "$" + strconv.Itoa(n)
}

// phs is a comma-separated list of count placeholders starting at the n-th.
func (d dialect) phs(n, count int) string {
	parts := make([]string, count)
	for i := range parts {
		parts[i] = d.ph(n + i)
	}
	return strings.Join(parts, ", ")
}

// quote quotes one identifier.
func (d dialect) quote(id string) string {
	if d.isSQLServer() {
		return "[" + strings.ReplaceAll(id, "]", "]]") + "]"
	}
	return `"` + strings.ReplaceAll(id, `"`, `""`) + `"`
}

// table is the schema-qualified, quoted table name.
func (d dialect) table(name string) string {
	return schemaName + "." + d.quote(name)
}

// col is alias.column, quoted.
func (d dialect) col(alias, name string) string {
	return alias + "." + d.quote(name)
}

// top goes right after SELECT; limit at the end of the statement. Exactly one
// of them is non-empty. n comes from Options, never from the database.
func (d dialect) top(n int) string {
	if d.isSQLServer() {
		return "TOP (" + strconv.Itoa(n) + ") "
	}
	return ""
}

func (d dialect) limit(n int) string {
	if d.isSQLServer() {
		return ""
	}
	return " LIMIT " + strconv.Itoa(n)
}

// asText reads a column of unknown type (Persons.Birthday, Persons.Sex) as
// text. On SQL Server style 121 renders a date/datetime as yyyy-mm-dd
// hh:mi:ss.mmm and leaves a string as it is.
func (d dialect) asText(expr string) string {
	if d.isSQLServer() {
		return "CONVERT(nvarchar(100), " + expr + ", 121)"
	}
	return "CAST(" + expr + " AS text)"
}

// rowVersionParam is a bind placeholder for an 8-byte big-endian rowversion
// (encodeRowVersion). Both rowversion binary(8) and the stand-in's bytea
// compare bytewise, which for 8 big-endian bytes is numeric order.
func (d dialect) rowVersionParam(n int) string {
	if d.isSQLServer() {
		return "CAST(" + d.ph(n) + " AS binary(8))"
	}
	return d.ph(n)
}

// versionQuery returns the server's version text.
func (d dialect) versionQuery() string {
	if d.isSQLServer() {
		return "SELECT @@VERSION"
	}
	return "SELECT version()"
}

// queryer is what the dialect needs from the pool.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// minActiveRowVersion returns the exclusive upper bound below which every
// Receptions rowversion belongs to a committed transaction, so rows of an
// open transaction are never skipped. ok is false when no safe bound is known
// right now (the caller reads nothing new and tries again on the next poll).
//
// SQL Server: MIN_ACTIVE_ROWVERSION() itself (@@DBTS + 1 when nothing is
// active).
//
// PostgreSQL stand-in: there is no such function, and dbo holds no helper
// objects, so it is emulated from the server's own lock table: in the same
// statement the max committed RowVersion is read and pg_locks is checked for
// another transaction holding a write lock (RowExclusiveLock) on
// dbo."Receptions". With no such writer the bound is max + 1 (what SQL Server
// returns when nothing is active): any transaction in flight when the max was
// read had that lock, and every rowversion handed out later is larger. With a
// writer in flight the bound is unknown and ok is false. This relies on the
// stand-in's writers assigning RowVersion in a statement that writes
// Receptions (as the demo and the tests do) and can pause reading while
// writers keep transactions open; it is exact, never skipping a row.
func (d dialect) minActiveRowVersion(ctx context.Context, db queryer) (bound uint64, ok bool, err error) {
	if d.isSQLServer() {
		var raw []byte
		if err := db.QueryRowContext(ctx, "SELECT MIN_ACTIVE_ROWVERSION()").Scan(&raw); err != nil {
			return 0, false, err
		}
		v, err := decodeRowVersion(raw)
		return v, err == nil, err
	}
	// PostgreSQL has no max(bytea); the index on RowVersion serves ORDER BY.
	q := fmt.Sprintf(`SELECT (SELECT %[1]s FROM %[2]s ORDER BY %[1]s DESC LIMIT 1),
	EXISTS (SELECT 1 FROM pg_locks l
	        WHERE l.locktype = 'relation'
	          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	          AND l.relation = to_regclass('%[3]s')::oid
	          AND l.mode = 'RowExclusiveLock'
	          AND l.pid IS DISTINCT FROM pg_backend_pid())`,
		d.quote(colReceptionsRowVersion), d.table(tblReceptions),
		strings.ReplaceAll(d.table(tblReceptions), "'", "''"))
	var (
		raw    []byte
		locked bool
	)
	if err := db.QueryRowContext(ctx, q).Scan(&raw, &locked); err != nil {
		return 0, false, err
	}
	if locked {
		return 0, false, nil
	}
	if raw == nil {
		return 1, true, nil
	}
	v, err := decodeRowVersion(raw)
	if err != nil {
		return 0, false, err
	}
	return v + 1, true, nil
}

// maxRowVersion is the largest committed Receptions rowversion (0 when none).
func (d dialect) maxRowVersion(ctx context.Context, db queryer) (uint64, error) {
	var raw []byte
	rv := d.quote(colReceptionsRowVersion)
	q := "SELECT " + d.top(1) + rv + " FROM " + d.table(tblReceptions) + " ORDER BY " + rv + " DESC" + d.limit(1)
	err := db.QueryRowContext(ctx, q).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) || err == nil && raw == nil {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return decodeRowVersion(raw)
}

// decodeRowVersion reads SQL Server's rowversion (binary(8)) or the stand-in's
// bytea: 8 bytes, big-endian.
func decodeRowVersion(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("ident: rowversion is %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// encodeRowVersion is the inverse of decodeRowVersion, for bind parameters.
func encodeRowVersion(v uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, v)
}
