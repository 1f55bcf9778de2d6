// Package migrations holds Lark's Postgres schema as numbered SQL files
// (NNNN_name.sql), applied in order by adapters/postgres.Migrate. The read
// models they create are the documented, stable schema analysts may query.
package migrations

import "embed"

// FS holds every migration file; names sort in the order they apply.
//
//go:embed *.sql
var FS embed.FS
