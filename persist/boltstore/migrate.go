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

// Migration to schema 4, run by Open, from a file of schema 1, 2 or 3.
//
// From schema 3 it only raises the number (see SchemaVersion).
//
// Schema 2 added the due index and LastSubmit, stored tasks in the binary
// encoding and gave them the Intent flag; schema 3 moves each task from
// the tasks bucket into the history bucket, right after its records (see
// taskKey). The migration moves every task (rewritten in the binary
// encoding). From schema 1 it also gives each task its Intent (true for a
// Submitting task whose last record is a submit_sending), builds the due
// index (every active task under its NextAt) and sets LastSubmit to
// the latest Updated of all tasks: every submit_sending record's At is at
// most its task's Updated, so the bound is never earlier than the real
// last submit, and a restarting engine holds at most a little longer than
// it needs. History records and params keep their encoding, which this
// program reads.
//
// A large file is migrated in transactions of migrateChunk tasks, so the
// migration's memory stays bounded. The first transaction raises the
// stored schema to SchemaVersion and sets keyMigrating (its value: the
// schema the tasks come from), so that an older captchafsm refuses the
// file as newer from then on; each later one moves the first
// migrateChunk tasks left in the tasks bucket and deletes them there; the
// last one deletes the emptied bucket and the key. A migration that stops (a crash, a full
// disk) resumes where it stopped at the next Open. A file whose migration
// from schema 1 to 2 stopped (schema 2, keyMigrating holding the last
// task that migration rewrote) is migrated as a schema-1 file: its tasks
// are of either encoding, and its LastSubmit covers only part of them.

// migrateChunk is the number of tasks one migration transaction rewrites
// (a variable for tests).
var migrateChunk = 10_000

// afterMigrateChunk, when set (by tests), is called after each migration
// transaction with the number of tasks migrated so far; an error stops
// the migration as a crash would.
var afterMigrateChunk func(migrated int) error

// keyMigrating is set while a migration runs: its value is the schema the
// file's tasks come from (one byte: 1 or 2).
var keyMigrating = []byte("migrating")

// schema3 reports whether meta is that of a schema-3 file whose migration
// is done: a schema-4 file in all but its number.
func schema3(meta *bbolt.Bucket) bool {
	v := meta.Get(keySchema)
	return len(v) == 8 && binary.BigEndian.Uint64(v) == 3 && meta.Get(keyMigrating) == nil
}

// migrate brings a file of schema 1, 2 or 3, or one whose migration
// stopped, to SchemaVersion.
func migrate(path string, db *bbolt.DB, log *slog.Logger) error {
	fail := func(err error) error {
		return fmt.Errorf("boltstore: open %s: migrate to schema %d: %w", path, SchemaVersion, err)
	}
	var from uint64
	err := db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if schema3(meta) {
			// Schema 4 only lets new values say that the due index holds
			// a task early; schema 3's exact index is one of its own.
			from = 3
			return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion))
		}
		from = binary.BigEndian.Uint64(meta.Get(keySchema))
		mark := meta.Get(keyMigrating)
		if (from == SchemaVersion || from == 3) && len(mark) == 1 {
			// Resumed (one that stopped on its way to schema 3 ends at
			// 4, which reads what it wrote).
			from = uint64(mark[0])
			return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion))
		}
		if from >= 3 {
			return damaged("schema %d with migration mark %x", from, mark)
		}
		if from == 2 && mark != nil {
			from = 1 // schema 1 to 2 stopped half way
		}
		if from == 1 && tx.Bucket(bucketDue) != nil {
			// Left by a migration to schema 2 that stopped: built again.
			if err := tx.DeleteBucket(bucketDue); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucketIfNotExists(bucketDue); err != nil {
			return err
		}
		if err := meta.Put(keyMigrating, []byte{byte(from)}); err != nil {
			return err
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, SchemaVersion))
	})
	if err != nil {
		return fail(err)
	}
	if from == 3 {
		log.Info("boltstore: migrated", logPath, path, "from_schema", from, "to_schema", SchemaVersion)
		return nil
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

// migrateChunkTx moves the first migrateChunk tasks left in the tasks
// bucket and reports how many it moved and whether none is left (then it
// ends the migration).
func migrateChunkTx(tx *bbolt.Tx) (n int, done bool, err error) {
	b, err := bucketsOf(tx)
	if err != nil {
		return 0, false, err
	}
	old := tx.Bucket(bucketTasks)
	mark := b.meta.Get(keyMigrating)
	if old == nil || len(mark) != 1 {
		return 0, false, fmt.Errorf("the migration's tasks bucket or mark is missing")
	}
	fromSchema1 := mark[0] == 1
	// The previous chunk's reads are done with: keep the resident set to
	// one chunk's pages.
	dropMapped(tx)
	var latest time.Time
	var moved [][]byte
	c := old.Cursor()
	k, v := c.First()
	for ; k != nil && n < migrateChunk; k, v = c.Next() {
		t, err := decodeTask(v)
		if err != nil {
			return 0, false, fmt.Errorf("task %q: %w", k, err)
		}
		if t.ID != string(k) {
			return 0, false, fmt.Errorf("task %q: %w", k, damaged("stored task says its id is %s", t.ID))
		}
		if fromSchema1 && t.State == states.Submitting {
			if t.Intent, err = lastIsIntent(b.history, t.ID); err != nil {
				return 0, false, fmt.Errorf("task %s: %w", t.ID, err)
			}
		}
		nv, err := encodeTask(t)
		if err != nil {
			return 0, false, fmt.Errorf("task %s: %w", t.ID, err)
		}
		if err := b.history.Put(taskKey(t.ID), nv); err != nil {
			return 0, false, err
		}
		if fromSchema1 && t.State.Active() {
			if err := b.due.Put(dueKey(t.NextAt, t.ID), []byte{}); err != nil {
				return 0, false, err
			}
		}
		if t.Updated.After(latest) {
			latest = t.Updated
		}
		moved = append(moved, bytes.Clone(k))
		n++
	}
	done = k == nil
	// Deletes wait until the cursor is done with the bucket.
	for _, k := range moved {
		if err := old.Delete(k); err != nil {
			return 0, false, err
		}
	}
	if first, _ := old.Cursor().First(); first != nil && len(moved) > 0 && bytes.Compare(first, moved[len(moved)-1]) <= 0 {
		// A damaged page (keys out of order) can hide a key from Delete:
		// the next chunk would start from it again, for ever.
		return 0, false, damaged("the tasks bucket's keys are out of order near %x", first)
	}
	if fromSchema1 {
		if err := raiseLastSubmit(b.meta, latest); err != nil {
			return 0, false, err
		}
	}
	if !done {
		return n, false, nil
	}
	if err := tx.DeleteBucket(bucketTasks); err != nil {
		return 0, false, err
	}
	return n, true, b.meta.Delete(keyMigrating)
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
