// Package migrations holds the goose SQL migrations of the Svyazka schema,
// embedded into the binary so `svyazka migrate` needs no files on disk.
package migrations

import "embed"

// FS holds every *.sql migration, applied in file-name order by goose.
//
//go:embed *.sql
var FS embed.FS
