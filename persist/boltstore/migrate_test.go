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

// copyFixture copies testdata/schema1.db into a temporary directory and
// returns the copy's path.
func copyFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema1.db"))
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
// as schema 1 stored them, with what schema 2 adds: Intent, the due index
// and LastSubmit.
func checkFixture(t *testing.T, s persist.Store) {
	t.Helper()
	ctx := context.Background()
	var active []*persist.Task
	var latest time.Time
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
	assert.True(t, last.Equal(latest), "LastSubmit: want the latest update %v, got %v", latest, last)
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

func TestMigrateFixture(t *testing.T) {
	path := copyFixture(t)
	v, _ := schemaOf(t, path)
	require.Equal(t, uint64(1), v, "the fixture is a schema-1 file")

	s := open(t, path, nil)
	checkFixture(t, s)
	require.NoError(t, s.Close())
	v, migrating := schemaOf(t, path)
	assert.Equal(t, uint64(boltstore.SchemaVersion), v)
	assert.False(t, migrating)

	// Opened again: nothing to migrate, and the store works on.
	s = open(t, path, nil)
	checkFixture(t, s)
	ctx := context.Background()
	task, err := s.GetByRef(ctx, "polling")
	require.NoError(t, err)
	task.Params = nil
	task.State, task.Polls, task.Token = states.Done, task.Polls+1, "0.late"
	require.NoError(t, s.Apply(ctx, task, &persist.Record{From: states.Polling, Event: transitions.Solved, To: states.Done}))
	due, err := s.Due(ctx, persist.DueOptions{})
	require.NoError(t, err)
	assert.Len(t, due, 6)
	hist, err := s.History(ctx, task.ID)
	require.NoError(t, err)
	assert.Equal(t, transitions.Solved, hist[len(hist)-1].Event)
}

// TestMigrateResumes: a migration that stops half way (here after its
// second transaction, as a crash would stop it) leaves a file an older
// program refuses, and the next Open finishes it.
func TestMigrateResumes(t *testing.T) {
	path := copyFixture(t)
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
	assert.Equal(t, uint64(boltstore.SchemaVersion), v, "a half-migrated file must look newer to schema 1")
	assert.True(t, migrating)

	s := open(t, path, nil)
	checkFixture(t, s)
	require.NoError(t, s.Close())
	_, migrating = schemaOf(t, path)
	assert.False(t, migrating)
}
