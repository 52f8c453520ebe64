package pgstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/captchafsm/captchafsm/persist"
)

// appName marks the rows of schema_version this program wrote, so that a
// schema_version table of another tool is not taken for ours.
const appName = "captchafsm"

// migration brings the schema from version Version-1 to Version.
type migration struct {
	Version int
	Note    string
	SQL     string
}

// migrations are applied in order; the last one's Version is the schema
// version of this program. A released migration is never edited: a change
// is a new migration.
var migrations = []migration{
	{1, "tasks, params, history, fleet", `
CREATE TABLE tasks (
    id             text COLLATE "C" PRIMARY KEY,
    ref            text COLLATE "C" UNIQUE,
    method         text NOT NULL,
    state          text NOT NULL,
    code           text NOT NULL DEFAULT '',
    submits        integer NOT NULL DEFAULT 0,
    retries        integer NOT NULL DEFAULT 0,
    resubmits      integer NOT NULL DEFAULT 0,
    polls          integer NOT NULL DEFAULT 0,
    provider_id    text NOT NULL DEFAULT '',
    next_at        timestamptz,
    next_at_ns     smallint NOT NULL DEFAULT 0,
    poll_since     timestamptz,
    poll_since_ns  smallint NOT NULL DEFAULT 0,
    token          text NOT NULL DEFAULT '',
    cost           text NOT NULL DEFAULT '',
    created        timestamptz NOT NULL,
    created_ns     smallint NOT NULL DEFAULT 0,
    updated        timestamptz NOT NULL,
    updated_ns     smallint NOT NULL DEFAULT 0,
    owner          text NOT NULL DEFAULT '',
    lease_until    timestamptz,
    lease_until_ns smallint NOT NULL DEFAULT 0,
    seq            bigint NOT NULL CHECK (seq > 0)
);
-- List by state (in id order) and Count.
CREATE INDEX tasks_state_id ON tasks (state, id);
-- Claim: the tasks an engine can drive, earliest next action first.
CREATE INDEX tasks_claim ON tasks (next_at NULLS FIRST, id)
    WHERE state IN ('Submitting', 'Backoff', 'Polling', 'Resubmitting');

-- Written once, by Create: a transition never rewrites a 100 kB image.
CREATE TABLE params (
    task_id text COLLATE "C" PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    params  json NOT NULL
);

CREATE TABLE history (
    task_id          text COLLATE "C" NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq              bigint NOT NULL CHECK (seq > 0),
    at               timestamptz NOT NULL,
    at_ns            smallint NOT NULL DEFAULT 0,
    from_state       text NOT NULL DEFAULT '',
    event            text NOT NULL,
    to_state         text NOT NULL,
    code             text NOT NULL DEFAULT '',
    detail           text NOT NULL DEFAULT '',
    provider_id      text NOT NULL DEFAULT '',
    possibly_charged boolean NOT NULL DEFAULT false,
    PRIMARY KEY (task_id, seq)
);

-- The fleet's account-wide conditions: one row.
CREATE TABLE fleet (
    id           integer PRIMARY KEY CHECK (id = 1),
    breaker_open boolean NOT NULL DEFAULT false,
    breaker_code text NOT NULL DEFAULT '',
    breaker_at   timestamptz,
    submit_until timestamptz,
    poll_until   timestamptz,
    next_submit  timestamptz
);
INSERT INTO fleet (id) VALUES (1);
`},
	{2, "intent, due index, last submit", `
-- Set by Apply: the task's last record is a submit_sending.
ALTER TABLE tasks ADD COLUMN intent boolean NOT NULL DEFAULT false;
UPDATE tasks t SET intent = true
WHERE state = 'Submitting'
    AND (SELECT h.event FROM history h WHERE h.task_id = t.id ORDER BY h.seq DESC LIMIT 1) = 'submit_sending';
-- Due: the active tasks in exact next-action order, a zero time (NULL) first.
CREATE INDEX tasks_due ON tasks ((COALESCE(next_at, '-infinity'::timestamptz)), next_at_ns, id)
    WHERE state IN ('Submitting', 'Backoff', 'Polling', 'Resubmitting');
-- LastSubmit: the latest submit intent, and the latest of those Prune deleted.
CREATE INDEX history_submits ON history (at DESC, at_ns DESC) WHERE event = 'submit_sending';
ALTER TABLE fleet ADD COLUMN pruned_submit timestamptz, ADD COLUMN pruned_submit_ns smallint NOT NULL DEFAULT 0;
`},
	{3, "the account probe's claim", `
-- ClaimProbe: the one engine that may probe the account until then.
ALTER TABLE fleet ADD COLUMN probe_until timestamptz, ADD COLUMN probe_owner text NOT NULL DEFAULT '';
`},
	{4, "task options", `
-- persist.TaskOptions: written by Create, never by Apply. Every row of an
-- older schema gets the zero options (no deadline, the policy's limits).
ALTER TABLE tasks
    ADD COLUMN deadline      timestamptz,
    ADD COLUMN deadline_ns   smallint NOT NULL DEFAULT 0,
    ADD COLUMN priority      integer NOT NULL DEFAULT 0,
    ADD COLUMN max_retries   integer NOT NULL DEFAULT 0,
    ADD COLUMN max_resubmits integer NOT NULL DEFAULT 0;
`},
	{5, "task labels", `
-- persist.TaskOptions.Labels: written by Create, never by Apply; NULL for
-- none (every row of an older schema).
ALTER TABLE tasks ADD COLUMN labels jsonb;
`},
}

// SchemaVersion is the schema version of this program: the version of its
// last migration. A schema with a higher version is refused with
// persist.ErrNewerSchema.
var SchemaVersion = migrations[len(migrations)-1].Version

// ourTables are the tables of the current schema.
var ourTables = []string{"fleet", "history", "params", "schema_version", "tasks"}

// migrate brings schema to the last of ms, in one transaction under an
// advisory lock so that engines starting together migrate once, and
// returns the versions before and after.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, ms []migration) (from, to int, err error) {
	want := ms[len(ms)-1].Version
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('captchafsm schema ' || $1))", schema); err != nil {
			return fmt.Errorf("lock for migration: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
				return fmt.Errorf("create schema %q: %w", schema, err)
			}
		}
		// The connection's search_path names the schema; make sure this
		// transaction uses it even if the pool's setting was overridden.
		if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", pgx.Identifier{schema}.Sanitize()); err != nil {
			return err
		}
		tables, err := tablesOf(ctx, tx, schema)
		if err != nil {
			return err
		}
		switch {
		case slices.Contains(tables, "schema_version"):
			if from, err = versionOf(ctx, tx, schema); err != nil {
				return err
			}
		case len(tables) > 0:
			return &openError{msg: fmt.Sprintf("schema %q holds tables of another program (%s) and no captchafsm schema_version; "+
				"choose another schema (Options.Schema) or database", schema, strings.Join(tables, ", ")),
				errs: []error{persist.ErrNotOurs}}
		default:
			if _, err := tx.Exec(ctx, `CREATE TABLE schema_version (
    version integer PRIMARY KEY,
    app     text NOT NULL,
    note    text NOT NULL,
    applied timestamptz NOT NULL DEFAULT now()
)`); err != nil {
				return fmt.Errorf("create schema_version: %w", err)
			}
		}
		if from > want {
			return &openError{msg: fmt.Sprintf("schema %q is at version %d, newer than this program's %d; upgrade captchafsm to open it",
				schema, from, want), errs: []error{persist.ErrNewerSchema}}
		}
		for _, m := range ms {
			if m.Version <= from {
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.Version, m.Note, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_version (version, app, note) VALUES ($1, $2, $3)",
				m.Version, appName, m.Note); err != nil {
				return fmt.Errorf("migration %d: record version: %w", m.Version, err)
			}
		}
		if tables, err = tablesOf(ctx, tx, schema); err != nil {
			return err
		}
		for _, name := range ourTables {
			if !slices.Contains(tables, name) {
				return &openError{msg: fmt.Sprintf("schema %q is at version %d but table %s is missing; the schema is damaged",
					schema, want, name), errs: []error{persist.ErrNotOurs}}
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return from, want, nil
}

// tablesOf returns the names of schema's tables, sorted.
func tablesOf(ctx context.Context, tx pgx.Tx, schema string) ([]string, error) {
	rows, err := tx.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return names, nil
}

// versionOf reads the schema version from schema_version, refusing a table
// of that name that another tool wrote.
func versionOf(ctx context.Context, tx pgx.Tx, schema string) (int, error) {
	notOurs := func(what string) error {
		return &openError{msg: fmt.Sprintf("schema %q holds a schema_version table of another program (%s); "+
			"choose another schema (Options.Schema) or database", schema, what), errs: []error{persist.ErrNotOurs}}
	}
	var version *int
	var others int
	err := tx.QueryRow(ctx, "SELECT max(version), count(*) FILTER (WHERE app <> $1) FROM schema_version", appName).Scan(&version, &others)
	switch {
	case pgCode(err) == codeUndefinedColumn:
		return 0, notOurs("its columns differ")
	case err != nil:
		return 0, fmt.Errorf("read schema_version: %w", err)
	case others > 0:
		return 0, notOurs(fmt.Sprintf("%d rows not written by %s", others, appName))
	case version == nil:
		// This program creates the table and records its first migration
		// in one transaction: an empty one is another's.
		return 0, notOurs("it is empty")
	}
	return *version, nil
}

// DropSchema deletes a store's schema with its tables and rows, for good:
// for tests, and to remove a store. It does nothing when the schema does
// not exist, and refuses (persist.ErrNotOurs) a schema that holds tables
// without a captchafsm schema_version. Stores open on the schema fail
// afterwards.
func DropSchema(ctx context.Context, url, schema string) error {
	if schema == "" {
		return fmt.Errorf("pgstore: drop schema: no schema named")
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("pgstore: drop schema %q: %w", schema, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('captchafsm schema ' || $1))", schema); err != nil {
			return err
		}
		tables, err := tablesOf(ctx, tx, schema)
		if err != nil {
			return err
		}
		if len(tables) > 0 {
			if !slices.Contains(tables, "schema_version") {
				return fmt.Errorf("schema holds tables of another program (%s): %w", strings.Join(tables, ", "), persist.ErrNotOurs)
			}
			if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", pgx.Identifier{schema}.Sanitize()); err != nil {
				return err
			}
			if _, err := versionOf(ctx, tx, schema); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: drop schema %q: %w", schema, err)
	}
	return nil
}
