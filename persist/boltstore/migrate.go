package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"time"

	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// Migration from schema 1 to 2, run by Open.
//
// Schema 2 adds the due index and LastSubmit, stores tasks in the binary
// encoding and gives them the Intent flag. The migration rewrites every
// task (binary, with Intent: true for a Submitting task whose last record
// is a submit_sending), enters each active one in the due index, and sets
// LastSubmit to the latest Updated of all tasks: every submit_sending
// record's At is at most its task's Updated, so the bound is never earlier
// than the real last submit, and a restarting engine holds at most a
// little longer than it needs. History records and params keep their JSON
// encoding, which this program reads.
//
// A large file is migrated in transactions of migrateChunk tasks, so the
// migration's memory stays bounded. The first transaction raises the
// stored schema to 2 and sets keyMigrating, so that an older captchafsm
// refuses the file as newer from then on; each later one also stores the
// last task it rewrote under keyMigrating; the last one deletes the key.
// A migration that stops (a crash, a full disk) resumes where it stopped
// at the next Open.

// migrateChunk is the number of tasks one migration transaction rewrites
// (a variable for tests).
var migrateChunk = 10_000

// afterMigrateChunk, when set (by tests), is called after each migration
// transaction with the number of tasks migrated so far; an error stops
// the migration as a crash would.
var afterMigrateChunk func(migrated int) error

// keyMigrating is set while a migration runs: its value is the id of the
// last task migrated (empty before the first).
var keyMigrating = []byte("migrating")

// migrate brings a schema-1 file, or one whose migration stopped, to
// SchemaVersion.
func migrate(path string, db *bbolt.DB, log *slog.Logger) error {
	fail := func(err error) error {
		return fmt.Errorf("boltstore: open %s: migrate to schema %d: %w", path, SchemaVersion, err)
	}
	var from uint64
	err := db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		from = binary.BigEndian.Uint64(meta.Get(keySchema))
		if meta.Get(keyMigrating) != nil {
			return nil // resumed
		}
		if _, err := tx.CreateBucketIfNotExists(bucketDue); err != nil {
			return err
		}
		if err := meta.Put(keyMigrating, []byte{}); err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion))
	})
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	log.Info("boltstore: migrating", logPath, path, "from_schema", from, "to_schema", SchemaVersion)
	total := 0
	for {
		n, done := 0, false
		err := db.Update(func(tx *bbolt.Tx) error {
			var err error
			n, done, err = migrateChunkTx(tx)
			return err
		})
		if err != nil {
			return fail(err)
		}
		total += n
		if done {
			break
		}
		if afterMigrateChunk != nil {
			if err := afterMigrateChunk(total); err != nil {
				return fail(err)
			}
		}
	}
	log.Info("boltstore: migrated", logPath, path, "to_schema", SchemaVersion, logCount, total,
		"seconds", time.Since(start).Seconds())
	return nil
}

// migrateChunkTx migrates the next migrateChunk tasks after the one
// keyMigrating names and reports how many it migrated and whether none is
// left (then it ends the migration).
func migrateChunkTx(tx *bbolt.Tx) (n int, done bool, err error) {
	b, err := bucketsOf(tx)
	if err != nil {
		return 0, false, err
	}
	b.tasks.FillPercent = 0.9
	// The previous chunk's reads are done with: keep the resident set to
	// one chunk's pages.
	dropMapped(tx)
	after := b.meta.Get(keyMigrating)
	if after == nil {
		return 0, false, fmt.Errorf("the migration's progress key is missing")
	}
	c := b.tasks.Cursor()
	k, v := c.First()
	if len(after) > 0 {
		k, v = c.Seek(after)
		if bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	var latest time.Time
	var last []byte
	type rewrite struct{ k, v []byte }
	var rewrites []rewrite
	for ; k != nil && n < migrateChunk; k, v = c.Next() {
		t, err := decodeTask(v)
		if err != nil {
			return 0, false, fmt.Errorf("task %q: %w", k, err)
		}
		if t.ID != string(k) {
			return 0, false, fmt.Errorf("task %q: %w", k, damaged("stored task says its id is %s", t.ID))
		}
		if t.State == states.Submitting {
			if t.Intent, err = lastIsIntent(b.history, t.ID); err != nil {
				return 0, false, fmt.Errorf("task %s: %w", t.ID, err)
			}
		}
		nv, err := encodeTask(t)
		if err != nil {
			return 0, false, fmt.Errorf("task %s: %w", t.ID, err)
		}
		// Puts wait until the cursor is done with the bucket.
		rewrites = append(rewrites, rewrite{bytes.Clone(k), nv})
		if t.State.Active() {
			if err := b.due.Put(dueKey(t.NextAt, t.ID), []byte{}); err != nil {
				return 0, false, err
			}
		}
		if t.Updated.After(latest) {
			latest = t.Updated
		}
		last = rewrites[len(rewrites)-1].k
		n++
	}
	done = k == nil
	for _, r := range rewrites {
		if err := b.tasks.Put(r.k, r.v); err != nil {
			return 0, false, err
		}
	}
	if err := raiseLastSubmit(b.meta, latest); err != nil {
		return 0, false, err
	}
	if done {
		return n, true, b.meta.Delete(keyMigrating)
	}
	return n, false, b.meta.Put(keyMigrating, last)
}

// lastIsIntent reports whether the last record of the task's history is a
// submit_sending.
func lastIsIntent(history *bbolt.Bucket, id string) (bool, error) {
	c := history.Cursor()
	k, _ := c.Seek(historyKey(id, math.MaxUint64))
	if k == nil {
		k, _ = c.Last()
	} else if !bytes.Equal(k, historyKey(id, math.MaxUint64)) {
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, historyPrefix(id)) {
		return false, damaged("no history")
	}
	rec, err := decodeRecord(history.Get(k))
	if err != nil {
		return false, err
	}
	return transitions.InDoubt(rec.Event), nil
}
