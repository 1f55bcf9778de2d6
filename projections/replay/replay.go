// Package replay rebuilds every read model from the event store into a
// scratch schema and compares it, table by table and row by row, with the
// live read models (`lark replay`, SPEC §2.6).
//
// How the comparison is made fair: every projection writes its rows and
// its checkpoint in one transaction, so a single REPEATABLE READ snapshot
// of the live schema holds, for every projection, rows that reflect
// exactly the events up to its checkpoint. Replay takes that snapshot
// first, copying the live tables into schema <scratch>_live and reading
// the checkpoints in the same transaction; then it reads $all once from the
// start and applies to each projection exactly the events at or before
// that projection's live checkpoint, into schema <scratch> (created and
// migrated through search_path, so the projections' unqualified table names
// land there). Live processes keep running meanwhile: what they do after
// the snapshot is invisible to both sides.
//
// Tables compared: every table the migrations create, except the
// operational ones that are not projected (Operational) and the columns
// that record when a row was processed rather than what happened
// (IgnoredColumns). Rows are matched by primary key.
package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/schollz/progressbar/v3"

	"github.com/larkhq/lark/adapters/esdb"
	"github.com/larkhq/lark/projections"
)

// Operational are tables that are not projected from the event store and
// so are not compared: when keys were last used, Idempotency-Key answers,
// and the migrations ledger.
var Operational = []string{"api_key_usage", "idempotency_keys", "schema_migrations"}

// IgnoredColumns are columns that depend on when a row was processed, not
// on history: a checkpoint's updated_at is the wall clock of its commit.
var IgnoredColumns = map[string][]string{"projection_checkpoints": {"updated_at"}}

// Source reads $all.
type Source interface {
	Follow(ctx context.Context, from esdb.Position, prefixes []string, out chan<- esdb.Message) error
}

// Options configure a replay.
type Options struct {
	// Pool is the live database; its current schema holds the live read models.
	Pool *pgxpool.Pool
	// Source is the event store.
	Source Source
	// Projections are the read models to rebuild (service.ReadModels()).
	Projections []projections.Projection
	// MigrateFunc creates the read-model tables in the pool's current
	// schema (postgres.Migrate).
	MigrateFunc func(ctx context.Context, pool *pgxpool.Pool) error
	// Schema names the scratch schema ("" = lark_replay_<random>); the
	// live snapshot goes to Schema+"_live".
	Schema string
	// Keep leaves both schemas in place for inspection.
	Keep bool
	// BatchSize is how many events a projection applies per transaction
	// (default 5,000).
	BatchSize int
	// Progress, if set, receives a progress bar.
	Progress io.Writer
	// MaxDiffs bounds the differing rows reported (default 1,000); the
	// counts per table are always complete.
	MaxDiffs int
}

// ColumnDiff is one column of a differing row.
type ColumnDiff struct {
	Column  string `json:"column"`
	Live    any    `json:"live"`
	Rebuilt any    `json:"rebuilt"`
}

// Diff kinds.
const (
	Missing = "missing" // history has the row (rebuilt), the live read model lacks it
	Extra   = "extra"   // the live read model has a row that history does not
	Differs = "differs" // in both, with different values
)

// Diff is one row that differs.
type Diff struct {
	Table   string         `json:"table"`
	Key     map[string]any `json:"key"`
	Kind    string         `json:"kind"`
	Columns []ColumnDiff   `json:"columns,omitempty"`
}

// TableResult is one table's comparison.
type TableResult struct {
	Table       string `json:"table"`
	LiveRows    int64  `json:"live_rows"`
	RebuiltRows int64  `json:"rebuilt_rows"`
	Differences int64  `json:"differences"`
}

// ProjectionResult is one projection's rebuild.
type ProjectionResult struct {
	Name    string        `json:"name"`
	StopAt  esdb.Position `json:"stop_at"`
	Applied int64         `json:"applied"`
}

// Report is the outcome of a replay.
type Report struct {
	Schema      string             `json:"schema"`
	LiveCopy    string             `json:"live_copy_schema"`
	Kept        bool               `json:"kept"`
	Read        int64              `json:"events_read"`
	Projections []ProjectionResult `json:"projections"`
	Tables      []TableResult      `json:"tables"`
	Diffs       []Diff             `json:"diffs"`
	Truncated   bool               `json:"diffs_truncated"`
	ReadTime    time.Duration      `json:"read_and_apply_ns"`
	Total       time.Duration      `json:"total_ns"`
}

// Differ reports whether any table differs.
func (r Report) Differ() bool {
	for _, t := range r.Tables {
		if t.Differences > 0 {
			return true
		}
	}
	return false
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,50}$`)

// Run rebuilds and compares. It returns an error only when it could not
// complete; differences are in the report.
func Run(ctx context.Context, o Options) (rep Report, err error) {
	start := time.Now()
	if o.Pool == nil || o.Source == nil || o.MigrateFunc == nil {
		return rep, errors.New("replay: Pool, Source and MigrateFunc are required")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.MaxDiffs <= 0 {
		o.MaxDiffs = 1000
	}
	if o.Schema == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.Schema = "lark_replay_" + hex.EncodeToString(b[:])
	}
	if !identRE.MatchString(o.Schema) {
		return rep, fmt.Errorf("replay: scratch schema name %q must match %s", o.Schema, identRE)
	}
	rep.Schema, rep.LiveCopy, rep.Kept = o.Schema, o.Schema+"_live", o.Keep
	var live string
	if err := o.Pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&live); err != nil {
		return rep, fmt.Errorf("replay: live schema: %w", err)
	}
	if live == o.Schema || live == rep.LiveCopy {
		return rep, fmt.Errorf("replay: scratch schema %q is the live schema", o.Schema)
	}
	defer func() {
		if o.Keep {
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, derr := o.Pool.Exec(dctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{o.Schema}.Sanitize()+` CASCADE;
			DROP SCHEMA IF EXISTS `+pgx.Identifier{rep.LiveCopy}.Sanitize()+` CASCADE`)
		if derr != nil && err == nil {
			err = fmt.Errorf("replay: drop scratch schemas: %w", derr)
		}
	}()

	// 1. The live snapshot: checkpoints and tables in one transaction.
	stops, err := snapshot(ctx, o.Pool, live, rep.LiveCopy)
	if err != nil {
		return rep, err
	}
	// 2. The scratch schema, migrated.
	scratch, err := scratchPool(ctx, o.Pool, o.Schema)
	if err != nil {
		return rep, err
	}
	defer scratch.Close()
	if err := o.MigrateFunc(ctx, scratch); err != nil {
		return rep, fmt.Errorf("replay: migrate scratch schema: %w", err)
	}
	// 3. Rebuild.
	t0 := time.Now()
	if rep.Read, rep.Projections, err = rebuild(ctx, o, scratch, stops); err != nil {
		return rep, err
	}
	rep.ReadTime = time.Since(t0)
	// 4. Compare.
	if rep.Tables, rep.Diffs, rep.Truncated, err = compare(ctx, o.Pool, rep.LiveCopy, o.Schema, o.MaxDiffs); err != nil {
		return rep, err
	}
	rep.Total = time.Since(start)
	return rep, nil
}

func isOperational(table string) bool {
	for _, t := range Operational {
		if t == table {
			return true
		}
	}
	return false
}

// snapshot copies the live read-model tables into schema copy and returns
// the live checkpoints, all from one REPEATABLE READ snapshot.
func snapshot(ctx context.Context, pool *pgxpool.Pool, live, copy string) (map[string]esdb.Position, error) {
	stops := map[string]esdb.Position{}
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT name, commit_position::text, prepare_position::text FROM projection_checkpoints`)
		if err != nil {
			return fmt.Errorf("read live checkpoints: %w", err)
		}
		for rows.Next() {
			var name, c, p string
			if err := rows.Scan(&name, &c, &p); err != nil {
				rows.Close()
				return err
			}
			var pos esdb.Position
			pos.Commit, _ = strconv.ParseUint(c, 10, 64)
			pos.Prepare, _ = strconv.ParseUint(p, 10, 64)
			stops[name] = pos
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		tables, err := tablesOf(ctx, tx, live)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{copy}.Sanitize()); err != nil {
			return fmt.Errorf("create live copy schema: %w", err)
		}
		for _, t := range tables {
			if isOperational(t) {
				continue
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE `+pgx.Identifier{copy, t}.Sanitize()+` AS TABLE `+pgx.Identifier{live, t}.Sanitize()); err != nil {
				return fmt.Errorf("copy live table %s: %w", t, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay: snapshot of the live read models: %w", err)
	}
	return stops, nil
}

func tablesOf(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schema string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name`, schema)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", schema, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// scratchPool creates the scratch schema and returns a pool whose
// search_path is that schema alone.
func scratchPool(ctx context.Context, live *pgxpool.Pool, schema string) (*pgxpool.Pool, error) {
	if _, err := live.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("replay: create scratch schema: %w", err)
	}
	cfg := live.Config().Copy()
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 16
	cfg.MinConns = 0
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replay: scratch pool: %w", err)
	}
	return p, nil
}

// rebuild reads $all once and feeds each projection, in its own goroutine
// and transactions, the events of its prefixes up to its live checkpoint.
func rebuild(ctx context.Context, o Options, scratch *pgxpool.Pool, stops map[string]esdb.Position) (int64, []ProjectionResult, error) {
	var maxStop esdb.Position
	type worker struct {
		p       projections.Projection
		stop    esdb.Position
		in      chan []esdb.Recorded
		applied int64
	}
	var workers []*worker
	prefixSet := map[string]bool{}
	for _, p := range o.Projections {
		stop, ok := stops[p.Name()]
		w := &worker{p: p, stop: stop, in: make(chan []esdb.Recorded, 4)}
		workers = append(workers, w)
		if !ok || stop == (esdb.Position{}) {
			continue
		}
		if maxStop.Less(stop) {
			maxStop = stop
		}
		for _, pre := range p.Prefixes() {
			prefixSet[pre] = true
		}
	}
	var prefixes []string
	for pre := range prefixSet {
		prefixes = append(prefixes, pre)
	}
	sort.Strings(prefixes)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	db := projections.NewDB(scratch, nil)
	var wg sync.WaitGroup
	errs := make(chan error, len(workers)+1)
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range w.in {
				if err := db.Tx(ctx, func(ctx context.Context, tx pgx.Tx) error { return w.p.Apply(ctx, tx, batch) }); err != nil {
					errs <- fmt.Errorf("replay: apply %s: %w", w.p.Name(), err)
					cancel()
					for range w.in {
					}
					return
				}
				w.applied += int64(len(batch))
			}
		}()
	}

	var bar *progressbar.ProgressBar
	if o.Progress != nil {
		bar = progressbar.NewOptions64(int64(maxStop.Commit), progressbar.OptionSetWriter(o.Progress),
			progressbar.OptionSetDescription("replaying $all"), progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("$all position"), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(o.Progress) }))
	}
	var read int64
	readErr := func() error {
		if len(prefixes) == 0 {
			return nil
		}
		fctx, fcancel := context.WithCancel(ctx)
		defer fcancel()
		ch := make(chan esdb.Message, 4096)
		followed := make(chan error, 1)
		go func() { followed <- o.Source.Follow(fctx, esdb.Position{}, prefixes, ch) }()
		pending := make([][]esdb.Recorded, len(workers))
		flush := func(i int) error {
			if len(pending[i]) == 0 {
				return nil
			}
			select {
			case workers[i].in <- pending[i]:
			case <-ctx.Done():
				return ctx.Err()
			}
			pending[i] = nil
			return nil
		}
		defer func() {
			for i := range workers {
				_ = flush(i)
			}
		}()
		for {
			var m esdb.Message
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-followed:
				return fmt.Errorf("replay: read $all: %w", err)
			case m = <-ch:
			}
			var at esdb.Position
			switch {
			case m.Event != nil:
				at = m.Event.Position
				if maxStop.Less(at) {
					return nil
				}
				read++
				for i, w := range workers {
					if w.stop.Less(at) || !hasPrefix(m.Event.Stream, w.p.Prefixes()) {
						continue
					}
					pending[i] = append(pending[i], *m.Event)
					if len(pending[i]) >= o.BatchSize {
						if err := flush(i); err != nil {
							return err
						}
					}
				}
			case m.Checkpoint != nil:
				at = *m.Checkpoint
			case m.CaughtUp:
				return nil
			}
			if bar != nil && read%1024 == 0 {
				_ = bar.Set64(int64(min(at.Commit, maxStop.Commit)))
			}
			if !at.Less(maxStop) {
				return nil
			}
		}
	}()
	for _, w := range workers {
		close(w.in)
	}
	wg.Wait()
	close(errs)
	if bar != nil {
		_ = bar.Finish()
	}
	for err := range errs {
		return read, nil, err
	}
	if readErr != nil {
		return read, nil, readErr
	}
	// The rebuilt checkpoints are the live ones, so that table compares too.
	var out []ProjectionResult
	for _, w := range workers {
		stop, ok := stops[w.p.Name()]
		out = append(out, ProjectionResult{Name: w.p.Name(), StopAt: stop, Applied: w.applied})
		if !ok {
			continue
		}
		if _, err := scratch.Exec(ctx, `INSERT INTO projection_checkpoints (name, commit_position, prepare_position)
			VALUES ($1, $2::numeric, $3::numeric)`, w.p.Name(), strconv.FormatUint(stop.Commit, 10), strconv.FormatUint(stop.Prepare, 10)); err != nil {
			return read, nil, fmt.Errorf("replay: write checkpoint %s: %w", w.p.Name(), err)
		}
	}
	// Checkpoints of projections not replayed are copied as they are, so
	// they do not show as differences (they are listed in the report).
	for name, stop := range stops {
		if hasProjection(o.Projections, name) {
			continue
		}
		out = append(out, ProjectionResult{Name: name + " (not rebuilt)", StopAt: stop})
		if _, err := scratch.Exec(ctx, `INSERT INTO projection_checkpoints (name, commit_position, prepare_position)
			VALUES ($1, $2::numeric, $3::numeric)`, name, strconv.FormatUint(stop.Commit, 10), strconv.FormatUint(stop.Prepare, 10)); err != nil {
			return read, nil, fmt.Errorf("replay: copy checkpoint %s: %w", name, err)
		}
	}
	return read, out, nil
}

func hasProjection(ps []projections.Projection, name string) bool {
	for _, p := range ps {
		if p.Name() == name {
			return true
		}
	}
	return false
}

func hasPrefix(stream string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(stream, p) {
			return true
		}
	}
	return false
}

// compare compares every table of the rebuilt schema that the live copy
// has, by primary key, ignoring IgnoredColumns.
func compare(ctx context.Context, pool *pgxpool.Pool, liveCopy, rebuilt string, maxDiffs int) ([]TableResult, []Diff, bool, error) {
	tables, err := tablesOf(ctx, pool, rebuilt)
	if err != nil {
		return nil, nil, false, err
	}
	var results []TableResult
	var diffs []Diff
	truncated := false
	for _, t := range tables {
		if isOperational(t) {
			continue
		}
		cols, key, err := columns(ctx, pool, rebuilt, t)
		if err != nil {
			return nil, nil, false, err
		}
		res := TableResult{Table: t}
		lt, rt := pgx.Identifier{liveCopy, t}.Sanitize(), pgx.Identifier{rebuilt, t}.Sanitize()
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+lt+`), (SELECT count(*) FROM `+rt+`)`).
			Scan(&res.LiveRows, &res.RebuiltRows); err != nil {
			if strings.Contains(err.Error(), "does not exist") {
				return nil, nil, false, fmt.Errorf("replay: table %s is not in the live schema (migrate the live database first): %w", t, err)
			}
			return nil, nil, false, fmt.Errorf("replay: count %s: %w", t, err)
		}
		var colList []string
		for _, c := range cols {
			colList = append(colList, pgx.Identifier{c}.Sanitize())
		}
		cl := strings.Join(colList, ", ")
		var keyList []string
		for _, k := range key {
			keyList = append(keyList, "d."+pgx.Identifier{k}.Sanitize())
		}
		// Rows of each side that the other lacks exactly, as JSON.
		q := `WITH l AS (SELECT ` + cl + ` FROM ` + lt + ` EXCEPT ALL SELECT ` + cl + ` FROM ` + rt + `),
			r AS (SELECT ` + cl + ` FROM ` + rt + ` EXCEPT ALL SELECT ` + cl + ` FROM ` + lt + `)
			SELECT side, row_to_json(d)::text FROM (
				SELECT 'l' AS side, l.* FROM l UNION ALL SELECT 'r' AS side, r.* FROM r) d`
		if len(keyList) > 0 {
			q += ` ORDER BY ` + strings.Join(keyList, ", ") + `, side`
		}
		rows, err := pool.Query(ctx, q)
		if err != nil {
			return nil, nil, false, fmt.Errorf("replay: compare %s: %w", t, err)
		}
		type keyed struct {
			key  string
			keys map[string]any
			l, r map[string]any
		}
		var order []string
		byKey := map[string]*keyed{}
		for rows.Next() {
			var side, js string
			if err := rows.Scan(&side, &js); err != nil {
				rows.Close()
				return nil, nil, false, err
			}
			var row map[string]any
			if err := json.Unmarshal([]byte(js), &row); err != nil {
				rows.Close()
				return nil, nil, false, err
			}
			delete(row, "side")
			kv := map[string]any{}
			for _, k := range key {
				kv[k] = row[k]
			}
			if len(key) == 0 {
				kv = row
			}
			kb, _ := json.Marshal(kv)
			k := string(kb)
			e, ok := byKey[k]
			if !ok || (len(key) == 0) {
				e = &keyed{key: k, keys: kv}
				byKey[k] = e
				order = append(order, k)
			}
			if side == "l" {
				e.l = row
			} else {
				e.r = row
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, nil, false, fmt.Errorf("replay: compare %s: %w", t, err)
		}
		for _, k := range order {
			e := byKey[k]
			res.Differences++
			if len(diffs) >= maxDiffs {
				truncated = true
				continue
			}
			d := Diff{Table: t, Key: e.keys}
			switch {
			case e.l == nil:
				d.Kind = Missing
			case e.r == nil:
				d.Kind = Extra
			default:
				d.Kind = Differs
				for _, c := range cols {
					lb, _ := json.Marshal(e.l[c])
					rb, _ := json.Marshal(e.r[c])
					if string(lb) != string(rb) {
						d.Columns = append(d.Columns, ColumnDiff{Column: c, Live: e.l[c], Rebuilt: e.r[c]})
					}
				}
			}
			diffs = append(diffs, d)
		}
		results = append(results, res)
	}
	return results, diffs, truncated, nil
}

// columns lists a table's compared columns (in order, without
// IgnoredColumns) and its primary-key columns.
func columns(ctx context.Context, pool *pgxpool.Pool, schema, table string) ([]string, []string, error) {
	rows, err := pool.Query(ctx, `SELECT column_name FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schema, table)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: columns of %s: %w", table, err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, err
	}
	var cols []string
	for _, c := range all {
		ignored := false
		for _, ig := range IgnoredColumns[table] {
			ignored = ignored || ig == c
		}
		if !ignored {
			cols = append(cols, c)
		}
	}
	rows, err = pool.Query(ctx, `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
		pgx.Identifier{schema, table}.Sanitize())
	if err != nil {
		return nil, nil, fmt.Errorf("replay: primary key of %s: %w", table, err)
	}
	key, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return cols, key, err
}
