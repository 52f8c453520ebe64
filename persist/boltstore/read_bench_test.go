package boltstore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/states"
)

// readDB is a database of readTasks tasks written by generate (seven in ten
// done, three in ten in flight), built once per test binary.
var readDB struct {
	once sync.Once
	path string
	err  error
}

const readTasks = 100_000

func readDBPath(b *testing.B) string {
	readDB.once.Do(func() {
		dir, err := os.MkdirTemp("", "boltstore-read-")
		if err != nil {
			readDB.err = err
			return
		}
		readDB.path = filepath.Join(dir, "read.db")
		s, err := boltstore.Open(readDB.path, &boltstore.Options{NoSync: true})
		if err != nil {
			readDB.err = err
			return
		}
		generate(b, s, readTasks, time.Now())
		readDB.err = s.Close()
	})
	if readDB.err != nil {
		b.Fatal(readDB.err)
	}
	return readDB.path
}

// BenchmarkResumeRead measures what an engine reads of a 100,000-task
// database (30,000 in flight) when it starts, beside raw bbolt reading
// the same bytes:
//
//   - scan: Scan of every task (decoded, without params);
//   - due_all: Due of every active task, then LastSubmit;
//   - due_window: Due of the first 1,000 tasks due within a second, then
//     LastSubmit: what an engine paging tasks in by due time needs first;
//   - list_active: List of the four active states and NeedsAccountFix, as
//     engine.Open's resume reads them today;
//   - raw_cursor: a bbolt cursor over the tasks (in the history bucket,
//     past their records), values copied, not decoded: the floor under
//     scan.
//
// Each reports the tasks it read ("tasks") and ns/op is one whole read:
//
//	go test -run='^$' -bench=ResumeRead -benchtime=10x ./persist/boltstore/
func BenchmarkResumeRead(b *testing.B) {
	path := readDBPath(b)
	ctx := context.Background()
	run := func(name string, read func(s *boltstore.Store) (int, error)) {
		b.Run(name, func(b *testing.B) {
			s, err := boltstore.Open(path, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			n := 0
			b.ResetTimer()
			for range b.N {
				if n, err = read(s); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "tasks")
		})
	}
	run("scan", func(s *boltstore.Store) (int, error) {
		n := 0
		err := s.Scan(ctx, persist.ListOptions{}, func(*persist.Task) error { n++; return nil })
		return n, err
	})
	run("due_all", func(s *boltstore.Store) (int, error) {
		due, err := s.Due(ctx, persist.DueOptions{})
		if err == nil {
			_, err = s.LastSubmit(ctx)
		}
		return len(due), err
	})
	run("due_window", func(s *boltstore.Store) (int, error) {
		due, err := s.Due(ctx, persist.DueOptions{Until: time.Now().Add(time.Second), Limit: 1000})
		if err == nil {
			_, err = s.LastSubmit(ctx)
		}
		return len(due), err
	})
	run("list_active", func(s *boltstore.Store) (int, error) {
		list, err := s.List(ctx, persist.ListOptions{States: []states.State{
			states.Submitting, states.Backoff, states.Polling, states.Resubmitting, states.NeedsAccountFix}})
		return len(list), err
	})
	b.Run("raw_cursor", func(b *testing.B) {
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		n := 0
		b.ResetTimer()
		for range b.N {
			n = 0
			var keep []byte
			err := db.View(func(tx *bbolt.Tx) error {
				// Tasks live in the history bucket after their records
				// (key id, 0x01; a record's key holds a 0x00).
				c := tx.Bucket([]byte("history")).Cursor()
				for k, v := c.First(); k != nil; k, v = c.Next() {
					if k[len(k)-1] != 1 || bytes.IndexByte(k, 0) >= 0 {
						continue
					}
					keep = append(keep[:0], v...)
					n++
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			_ = keep
		}
		b.ReportMetric(float64(n), "tasks")
	})
}
