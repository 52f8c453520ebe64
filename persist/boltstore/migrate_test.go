package boltstore_test

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// fixtures are the databases older stores wrote (see fixture_test.go),
// by the schema they were written with.
var fixtures = []struct {
	name   string
	schema uint64
}{{"schema1.db", 1}, {"schema2.db", 2}, {"schema3.db", 3}}

// copyFixture copies testdata/name into a temporary directory and returns
// the copy's path.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "old.db")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// schemaOf reads the schema version and the migration mark of a closed
// file.
func schemaOf(t *testing.T, path string) (version uint64, migrating bool) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		version = binary.BigEndian.Uint64(meta.Get([]byte("schema")))
		migrating = meta.Get([]byte("migrating")) != nil
		return nil
	}))
	return version, migrating
}

// checkFixture checks that s holds every task and history of the fixture
// as schema 1 or 2 stored them, with what schema 2 added: Intent, the due
// index and LastSubmit (from schema 1: the latest update; from schema 2:
// the last submit, as that store kept it).
func checkFixture(t *testing.T, s persist.Store, schema uint64) {
	t.Helper()
	ctx := context.Background()
	var active []*persist.Task
	var latest, lastSubmit time.Time
	fts := fixtureTasks()
	for _, ft := range fts {
		want, wantHist := fixtureState(ft)
		want.Params = ft.task.Params
		want.Intent = wantHist[len(wantHist)-1].Event == transitions.SubmitSending
		got, err := s.Get(ctx, want.ID)
		require.NoError(t, err)
		sameTask(t, want, got)
		assert.Equal(t, want.Intent, got.Intent, "%s: intent", want.Ref)
		hist, err := s.History(ctx, want.ID)
		require.NoError(t, err)
		require.Len(t, hist, len(wantHist), want.Ref)
		for i := range hist {
			if hist[i].Event == transitions.SubmitSending && hist[i].At.After(lastSubmit) {
				lastSubmit = hist[i].At
			}
			assert.True(t, hist[i].At.Equal(wantHist[i].At), "%s record %d", want.Ref, i+1)
			hist[i].At, wantHist[i].At = time.Time{}, time.Time{}
			assert.Equal(t, wantHist[i], hist[i], "%s record %d", want.Ref, i+1)
		}
		if ft.task.Ref != "" {
			byRef, err := s.GetByRef(ctx, ft.task.Ref)
			require.NoError(t, err)
			assert.Equal(t, want.ID, byRef.ID)
		}
		if want.State.Active() {
			active = append(active, want)
		}
		if want.Updated.After(latest) {
			latest = want.Updated
		}
	}
	list, err := s.List(ctx, persist.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, list, len(fts))

	slices.SortFunc(active, func(a, b *persist.Task) int {
		return cmp.Or(a.NextAt.Compare(b.NextAt), strings.Compare(a.ID, b.ID))
	})
	due, err := s.Due(ctx, persist.DueOptions{})
	require.NoError(t, err)
	require.Len(t, due, len(active))
	for i := range due {
		assert.Equal(t, active[i].ID, due[i].ID, "due %d", i)
	}
	last, err := s.LastSubmit(ctx)
	require.NoError(t, err)
	if schema == 1 {
		assert.True(t, last.Equal(latest), "LastSubmit: want the latest update %v, got %v", latest, last)
	} else {
		assert.True(t, last.Equal(lastSubmit), "LastSubmit: want the last submit %v, got %v", lastSubmit, last)
	}
	counts, err := s.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[states.State]int{states.Submitting: 4, states.Backoff: 1, states.Polling: 1,
		states.Resubmitting: 1, states.NeedsAccountFix: 1, states.Done: 21, states.Failed: 1}, counts)
}

// sameTask compares every field of two tasks, times as instants.
func sameTask(t *testing.T, want, got *persist.Task) {
	t.Helper()
	w, g := *want, *got
	for _, p := range [][2]*time.Time{{&w.NextAt, &g.NextAt}, {&w.PollSince, &g.PollSince}, {&w.Created, &g.Created},
		{&w.Updated, &g.Updated}, {&w.LeaseUntil, &g.LeaseUntil}} {
		assert.True(t, p[0].Equal(*p[1]), "%s: time %v, want %v", want.Ref, *p[1], *p[0])
		*p[0], *p[1] = time.Time{}, time.Time{}
	}
	assert.Equal(t, w, g)
}

// buckets returns the names of a closed file's top-level buckets.
func bucketNames(t *testing.T, path string) []string {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	var names []string
	require.NoError(t, db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	}))
	return names
}

// TestMigrateFixture: a file written by the schema-1 store and one
// written by the schema-2 store open with every task, history, index
// entry and LastSubmit; the old tasks bucket and due index are gone, and
// the store works on: every task still active is driven to an end, and
// the due index empties.
func TestMigrateFixture(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			path := copyFixture(t, fx.name)
			v, _ := schemaOf(t, path)
			require.Equal(t, fx.schema, v, "the fixture's schema")

			s := open(t, path, nil)
			checkFixture(t, s, fx.schema)
			require.NoError(t, s.Close())
			v, migrating := schemaOf(t, path)
			assert.Equal(t, uint64(boltstore.SchemaVersion), v)
			assert.False(t, migrating)
			assert.ElementsMatch(t, []string{"meta", "params", "history", "refs", "by_state", "due"}, bucketNames(t, path))

			// Opened again: nothing to migrate, and the store works on.
			s = open(t, path, nil)
			checkFixture(t, s, fx.schema)
			finishAll(t, s)
		})
	}
}

// finishAll drives every task of s that is not terminal to Done (a
// parked task through account_fixed, a fresh one through a submit) and
// checks the result: every history ends in Done or Failed, nothing is
// due, the counts add up.
func finishAll(t *testing.T, s persist.Store) {
	t.Helper()
	ctx := context.Background()
	tasks, err := s.List(ctx, persist.ListOptions{})
	require.NoError(t, err)
	step := func(task *persist.Task, ev transitions.Event, to states.State, change func(*persist.Task)) {
		t.Helper()
		from := task.State
		task.State = to
		if change != nil {
			change(task)
		}
		require.NoError(t, s.Apply(ctx, task, &persist.Record{From: from, Event: ev, To: to}), "%s: %s", task.Ref, ev)
	}
	for _, task := range tasks {
		for !task.State.Terminal() {
			switch task.State {
			case states.NeedsAccountFix:
				step(task, transitions.AccountFixed, states.Submitting, func(x *persist.Task) { x.NextAt = time.Time{} })
			case states.Submitting, states.Backoff, states.Resubmitting:
				step(task, transitions.SubmitAccepted, states.Polling, func(x *persist.Task) {
					x.ProviderID, x.NextAt = "9100000000", x.Updated.Add(20*time.Second)
				})
			case states.Polling:
				step(task, transitions.NotReady, states.Polling, func(x *persist.Task) { x.NextAt = x.NextAt.Add(5 * time.Second) })
				step(task, transitions.Solved, states.Done, func(x *persist.Task) { x.Token, x.NextAt = "0.finished", time.Time{} })
			}
		}
	}
	due, err := s.Due(ctx, persist.DueOptions{})
	require.NoError(t, err)
	assert.Empty(t, due)
	counts, err := s.Count(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[states.State]int{states.Done: 29, states.Failed: 1}, counts)
	for _, task := range tasks {
		hist, err := s.History(ctx, task.ID)
		require.NoError(t, err)
		assert.Equal(t, task.State, hist[len(hist)-1].To, task.Ref)
		assert.Equal(t, task.Seq, hist[len(hist)-1].Seq, task.Ref)
	}
}

// TestMigrateResumes: a migration that stops half way (here after its
// second transaction, as a crash would stop it) leaves a file an older
// program refuses, and the next Open finishes it.
func TestMigrateResumes(t *testing.T) {
	for _, fx := range fixtures {
		if fx.schema >= 3 {
			continue // its migration is one transaction: no task moves
		}
		t.Run(fx.name, func(t *testing.T) {
			path := copyFixture(t, fx.name)
			defer boltstore.SetMigrateChunk(7)()
			stop := errors.New("the power went out")
			restore := boltstore.SetAfterMigrateChunk(func(done int) error {
				if done >= 14 {
					return stop
				}
				return nil
			})
			_, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
			require.ErrorIs(t, err, stop)
			restore()
			v, migrating := schemaOf(t, path)
			assert.Equal(t, uint64(boltstore.SchemaVersion), v, "a half-migrated file must look newer to the older store")
			assert.True(t, migrating)

			s := open(t, path, nil)
			checkFixture(t, s, fx.schema)
			require.NoError(t, s.Close())
			_, migrating = schemaOf(t, path)
			assert.False(t, migrating)
		})
	}
}

// TestMigrateStoppedSchema2Migration: a file whose migration from schema 1
// to 2 stopped half way (the schema-2 store had raised the schema to 2,
// created its due index, rewritten some tasks and marked the last) is
// migrated to schema 3 as a schema-1 file.
func TestMigrateStoppedSchema2Migration(t *testing.T) {
	path := copyFixture(t, "schema1.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucket([]byte("due")); err != nil {
			return err
		}
		meta := tx.Bucket([]byte("meta"))
		if err := meta.Put([]byte("migrating"), []byte(fixtureID(3))); err != nil {
			return err
		}
		return meta.Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, 2))
	}))
	require.NoError(t, db.Close())

	s := open(t, path, nil)
	checkFixture(t, s, 1)
	require.NoError(t, s.Close())
	v, migrating := schemaOf(t, path)
	assert.Equal(t, uint64(boltstore.SchemaVersion), v)
	assert.False(t, migrating)
	assert.NotContains(t, bucketNames(t, path), "tasks")
}
