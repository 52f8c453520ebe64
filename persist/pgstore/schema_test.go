package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
)

// The tests of this file reach into the database, so they live inside the
// package (and cannot use pgstoretest, which imports it).

// testDB returns the test database's URL and a connection to it, and a
// new schema name dropped when t ends; it skips t without a database.
func testDB(t *testing.T) (url string, conn *pgx.Conn, schema string) {
	t.Helper()
	url = os.Getenv("CAPTCHAFSM_TEST_PG")
	if url == "" {
		t.Skip("CAPTCHAFSM_TEST_PG is not set: this test needs a PostgreSQL server; " +
			"`source .ci/postgres.sh` starts a throwaway one on loopback and sets it")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema = "test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		_, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		assert.NoError(t, err)
		_ = conn.Close(ctx)
	})
	return url, conn, schema
}

func exec(t *testing.T, conn *pgx.Conn, schema, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	_, err := conn.Exec(ctx, "SET search_path TO "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, sql, args...)
	require.NoError(t, err)
}

func version(t *testing.T, conn *pgx.Conn, schema string) int {
	t.Helper()
	var v int
	require.NoError(t, conn.QueryRow(context.Background(),
		"SELECT max(version) FROM "+pgx.Identifier{schema, "schema_version"}.Sanitize()).Scan(&v))
	return v
}

func TestSchemaCreatedAtCurrentVersion(t *testing.T) {
	url, conn, schema := testDB(t)
	s, err := Open(context.Background(), url, &Options{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	assert.Equal(t, SchemaVersion, version(t, conn, schema))
	// Opening again migrates nothing and records nothing.
	s, err = Open(context.Background(), url, &Options{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	var rows int
	require.NoError(t, conn.QueryRow(context.Background(),
		"SELECT count(*) FROM "+pgx.Identifier{schema, "schema_version"}.Sanitize()).Scan(&rows))
	assert.Equal(t, len(migrations), rows)
}

// TestMigrateOlderSchema: a database at version 1 with tasks in it is
// brought to a later version by the migrations it lacks, and its data
// survives.
func TestMigrateOlderSchema(t *testing.T) {
	ctx := context.Background()
	url, conn, schema := testDB(t)
	s, err := Open(ctx, url, &Options{Schema: schema})
	require.NoError(t, err)
	task := &persist.Task{ID: persist.NewID(), Ref: "kept", Method: "post", Params: map[string]string{"k": "v"}}
	require.NoError(t, s.Create(ctx, task))
	require.NoError(t, s.Close())

	next := SchemaVersion + 1
	later := append(append([]migration{}, migrations...),
		migration{next, "a column for a later release", "ALTER TABLE tasks ADD COLUMN weight integer NOT NULL DEFAULT 0"},
		migration{next + 1, "and an index on it", "CREATE INDEX tasks_weight ON tasks (weight)"})
	s, err = Open(ctx, url, &Options{Schema: schema})
	require.NoError(t, err)
	from, to, err := migrate(ctx, s.pool, schema, later)
	require.NoError(t, err)
	assert.Equal(t, []int{SchemaVersion, next + 1}, []int{from, to})
	require.NoError(t, s.Close())
	assert.Equal(t, next+1, version(t, conn, schema))
	var weight int
	require.NoError(t, conn.QueryRow(ctx, "SELECT weight FROM "+pgx.Identifier{schema, "tasks"}.Sanitize()+" WHERE ref = 'kept'").Scan(&weight))
	assert.Zero(t, weight)

	// This program, older than the schema now, refuses it and says why.
	_, err = Open(ctx, url, &Options{Schema: schema})
	require.ErrorIs(t, err, persist.ErrNewerSchema)
	assert.ErrorContains(t, err, fmt.Sprintf("version %d, newer than this program's %d", next+1, SchemaVersion))
	assert.ErrorContains(t, err, schema)
}

// TestMigrateFromVersion1: tasks written at schema version 1 get their
// intent flag, the due index and LastSubmit from migration 2.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	url, conn, schema := testDB(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	_, _, err = migrate(ctx, pool, schema, migrations[:1])
	pool.Close()
	require.NoError(t, err)

	// Three tasks as version 1's store wrote them: a submit in flight, a
	// polling task, a solved one.
	base := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	ids := []string{persist.NewID(), persist.NewID(), persist.NewID()}
	type rec struct {
		seq      int
		from, ev string
		to       string
	}
	paths := [][]rec{
		{{1, "", "created", "Submitting"}, {2, "Submitting", "submit_sending", "Submitting"}},
		{{1, "", "created", "Submitting"}, {2, "Submitting", "submit_sending", "Submitting"}, {3, "Submitting", "submit_accepted", "Polling"}},
		{{1, "", "created", "Submitting"}, {2, "Submitting", "submit_sending", "Submitting"}, {3, "Submitting", "submit_accepted", "Polling"},
			{4, "Polling", "solved", "Done"}},
	}
	for i, path := range paths {
		last := path[len(path)-1]
		next := base.Add(time.Duration(10-i) * time.Second)
		var nextAt *time.Time
		if last.to != "Done" {
			nextAt = &next
		}
		exec(t, conn, schema, `INSERT INTO tasks (id, method, state, next_at, created, updated, seq) VALUES ($1, 'post', $2, $3, $4, $5, $6)`,
			ids[i], last.to, nextAt, base, base.Add(time.Duration(len(path))*time.Second), len(path))
		exec(t, conn, schema, `INSERT INTO params (task_id, params) VALUES ($1, '{}')`, ids[i])
		for _, r := range path {
			exec(t, conn, schema, `INSERT INTO history (task_id, seq, at, from_state, event, to_state) VALUES ($1, $2, $3, $4, $5, $6)`,
				ids[i], r.seq, base.Add(time.Duration(r.seq)*time.Second+time.Duration(i)*time.Minute), r.from, r.ev, r.to)
		}
	}

	s, err := Open(ctx, url, &Options{Schema: schema})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, SchemaVersion, version(t, conn, schema))
	for i, want := range []bool{true, false, false} {
		task, err := s.Get(ctx, ids[i])
		require.NoError(t, err)
		assert.Equal(t, want, task.Intent, "task %d", i)
		assert.Zero(t, task.Options, "a task of an older schema has no options")
	}
	due, err := s.Due(ctx, persist.DueOptions{})
	require.NoError(t, err)
	require.Len(t, due, 2)
	assert.Equal(t, []string{ids[1], ids[0]}, []string{due[0].ID, due[1].ID}, "the polling task is due first")
	last, err := s.LastSubmit(ctx)
	require.NoError(t, err)
	want := base.Add(2*time.Second + 2*time.Minute)
	assert.True(t, last.Equal(want), "LastSubmit: want %v, got %v", want, last)
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	url, conn, schema := testDB(t)
	s, err := Open(ctx, url, &Options{Schema: schema})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	exec(t, conn, schema, "INSERT INTO schema_version (version, app, note) VALUES ($1, 'captchafsm', 'from the future')", SchemaVersion+5)
	_, err = Open(ctx, url, &Options{Schema: schema})
	require.ErrorIs(t, err, persist.ErrNewerSchema)
	assert.ErrorContains(t, err, fmt.Sprintf("schema %q is at version %d, newer than this program's %d; upgrade captchafsm",
		schema, SchemaVersion+5, SchemaVersion))
}

func TestNotOurs(t *testing.T) {
	tests := []struct {
		name, setup, want string
	}{
		{"tables of another program", "CREATE TABLE invoices (id int); CREATE TABLE customers (id int)",
			"holds tables of another program (customers, invoices)"},
		{"schema_version of another shape", "CREATE TABLE schema_version (version bigint, dirty boolean)",
			"schema_version table of another program (its columns differ)"},
		{"schema_version of another app", "CREATE TABLE schema_version (version int, app text, note text); " +
			"INSERT INTO schema_version VALUES (3, 'billing', 'x')", "1 rows not written by captchafsm"},
		{"empty schema_version", "CREATE TABLE schema_version (version int, app text, note text)", "it is empty"},
		{"a table of ours missing", "", "table params is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			url, conn, schema := testDB(t)
			if tt.setup == "" {
				s, err := Open(ctx, url, &Options{Schema: schema})
				require.NoError(t, err)
				require.NoError(t, s.Close())
				exec(t, conn, schema, "DROP TABLE params")
			} else {
				exec(t, conn, "public", "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
				exec(t, conn, schema, tt.setup)
			}
			_, err := Open(ctx, url, &Options{Schema: schema})
			require.ErrorIs(t, err, persist.ErrNotOurs)
			assert.ErrorContains(t, err, tt.want)
			assert.ErrorContains(t, err, "pgstore: open 127.0.0.1:")
			if tt.setup != "" {
				require.ErrorIs(t, DropSchema(ctx, url, schema), persist.ErrNotOurs, "DropSchema refuses another's schema")
			}
		})
	}
}

// TestReserveSubmitAdvancesExactly: the fleet's slot moves on by exactly
// 1/rate per reservation, in the server's clock.
func TestReserveSubmitAdvancesExactly(t *testing.T) {
	ctx := context.Background()
	url, conn, schema := testDB(t)
	s, err := Open(ctx, url, &Options{Schema: schema})
	require.NoError(t, err)
	defer s.Close()
	// A slot an hour ahead: every reservation queues behind it.
	exec(t, conn, schema, "UPDATE fleet SET next_submit = now() + interval '1 hour'")
	var first time.Time
	require.NoError(t, conn.QueryRow(ctx, "SELECT next_submit FROM fleet").Scan(&first))
	const n, rate = 25, 8.0
	step := time.Duration(float64(time.Second) / rate)
	for i := range n {
		at, err := s.ReserveSubmit(ctx, rate)
		require.NoError(t, err)
		// In this host's clock: an hour from the setup, plus i slots.
		assert.WithinDuration(t, time.Now().Add(time.Hour+time.Duration(i)*step), at, time.Second, "slot %d", i)
	}
	var last time.Time
	require.NoError(t, conn.QueryRow(ctx, "SELECT next_submit FROM fleet").Scan(&last))
	assert.Equal(t, time.Duration(n*float64(time.Second)/rate), last.Sub(first))
}
