package boltstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// The transition benchmarks compare Store.Apply with raw bbolt writing as
// many bytes per transition (one Update per put, and bbolt's Batch), all
// with real fsync, with 1, 64 and 1,000 concurrent callers. Each caller
// works on its own task (its own key range). Each reports "transitions/s";
// Store.Apply also "transitions/commit". Run them together:
//
//	go test -run='^$' -bench=Transitions -benchtime=2000x ./persist/boltstore/

var benchCallers = []int{1, 64, 1000}

// benchNoSync (CAPTCHAFSM_BENCH_NOSYNC=1) runs BenchmarkVsRawBatch without
// fsync on either side: what the store's CPU costs beside raw bbolt's.
var benchNoSync = os.Getenv("CAPTCHAFSM_BENCH_NOSYNC") != ""

func BenchmarkTransitions(b *testing.B) {
	for _, n := range benchCallers {
		b.Run(fmt.Sprintf("store_apply/callers=%d", n), func(b *testing.B) { benchApply(b, n) })
		b.Run(fmt.Sprintf("raw_update/callers=%d", n), func(b *testing.B) { benchRaw(b, n, false) })
		b.Run(fmt.Sprintf("raw_batch/callers=%d", n), func(b *testing.B) { benchRaw(b, n, true) })
	}
}

// runCallers runs b.N operations on callers goroutines, each taking the
// next operation number until b.N are done, and reports transitions/s.
func runCallers(b *testing.B, callers int, op func(caller, i int) error) {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range callers {
		wg.Go(func() {
			<-start
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				if err := op(c, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	b.ResetTimer()
	t := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "transitions/s")
}

// benchTask is a polling task as the engine keeps it.
func benchTask() *persist.Task {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return &persist.Task{ID: persist.NewID(), Ref: "bench", Method: "userrecaptcha",
		Params:  map[string]string{"googlekey": strings.Repeat("k", 40), "pageurl": "https://example.com/login"},
		Created: at, Updated: at}
}

// accepted makes t a task in.php accepted as it was created, its first
// poll due 5 s later (notReady's pace), as the engine schedules one.
func accepted(t *persist.Task) {
	t.State, t.ProviderID, t.PollSince = states.Polling, "7234567890", t.Created
	t.NextAt = t.Created.Add(5 * time.Second)
}

func notReady(t *persist.Task) *persist.Record {
	t.Polls++
	t.Code = "CAPCHA_NOT_READY"
	t.Updated = t.Updated.Add(5 * time.Second)
	t.NextAt = t.Updated.Add(5 * time.Second)
	return &persist.Record{At: t.Updated, From: states.Polling, Event: transitions.NotReady, To: states.Polling,
		Code: "CAPCHA_NOT_READY", ProviderID: t.ProviderID}
}

// transitionBytes is what one transition writes: the task and the record.
func transitionBytes(b *testing.B) int {
	t := benchTask()
	accepted(t)
	t.Seq = 3
	t.DueAt = t.NextAt // the due index keeps its place through the poll
	rec := notReady(t)
	rec.Seq = 4
	tv, err := encodeTask(t)
	if err != nil {
		b.Fatal(err)
	}
	rv, err := encodeRecord(rec)
	if err != nil {
		b.Fatal(err)
	}
	return len(tv) + len(rv)
}

func benchApply(b *testing.B, callers int) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	tasks := make([]*persist.Task, callers)
	for i := range tasks {
		tasks[i] = benchTask()
		tasks[i].Ref = fmt.Sprint("bench-", i)
	}
	if err := s.Create(ctx, tasks...); err != nil {
		b.Fatal(err)
	}
	for _, t := range tasks {
		accepted(t)
		rec := &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted, To: states.Polling, ProviderID: t.ProviderID}
		if err := s.Apply(ctx, t, rec); err != nil {
			b.Fatal(err)
		}
	}
	commits := s.commits.Load()
	runCallers(b, callers, func(c, _ int) error {
		t := tasks[c]
		return s.Apply(ctx, t, notReady(t))
	})
	b.ReportMetric(float64(b.N)/float64(max(1, s.commits.Load()-commits)), "transitions/commit")
}

func benchRaw(b *testing.B, callers int, batch bool) {
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// Start from as much data per caller as the store's tasks hold before
	// the timed transitions (a task, its params and two records), so
	// neither side writes into an empty file.
	name, val := rawPuts, make([]byte, transitionBytes(b))
	fillRaw(b, db, callers, val)
	put := func(c, i int) error {
		key := rawKey(c, 2+i)
		fn := func(tx *bbolt.Tx) error { return tx.Bucket(name).Put(key, val) }
		if batch {
			return db.Batch(fn)
		}
		return db.Update(fn)
	}
	runCallers(b, callers, put)
}

// BenchmarkLoneCommit measures what a lone transition costs over a raw
// bbolt Update that puts as many bytes: each iteration commits one
// Store.Apply (a polling task's not-ready step) and one raw put,
// alternately, so that both meet the same disk. It reports the mean of
// each ("store_us", "raw_us") and their difference ("overhead_us"), with
// real fsync ("sync") and without ("nosync": the CPU part alone), and
// the writes (pages, or runs of pages) each commit made ("store_writes",
// "raw_writes"): what the disk has to flush, counted, not timed.
//
//	go test -run='^$' -bench=LoneCommit -benchtime=2000x -count=3 ./persist/boltstore/
func BenchmarkLoneCommit(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		for _, tasks := range []int{1, 1000} {
			name := "sync"
			if noSync {
				name = "nosync"
			}
			if tasks > 1 {
				// Each iteration moves the next of 1,000 polling tasks
				// (and raw puts the next of 1,000 callers' values): trees
				// of many pages, as in a store with work in flight.
				name += fmt.Sprintf("/tasks=%d", tasks)
			}
			b.Run(name, func(b *testing.B) { benchLoneCommit(b, noSync, tasks) })
		}
	}
}

func benchLoneCommit(b *testing.B, noSync bool, n int) {
	dir := b.TempDir()
	s, err := Open(filepath.Join(dir, "store.db"), &Options{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	db, err := bbolt.Open(filepath.Join(dir, "raw.db"), 0o600, &bbolt.Options{NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	tasks := make([]*persist.Task, n)
	for i := range tasks {
		tasks[i] = benchTask()
		tasks[i].Ref = fmt.Sprint("bench-", i)
	}
	if err := s.Create(ctx, tasks...); err != nil {
		b.Fatal(err)
	}
	for _, task := range tasks {
		accepted(task)
		if err := s.Apply(ctx, task, &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted,
			To: states.Polling, ProviderID: task.ProviderID}); err != nil {
			b.Fatal(err)
		}
	}
	name, val := rawPuts, make([]byte, transitionBytes(b))
	fillRaw(b, db, n, val)
	var storeT, rawT time.Duration
	storeW0, rawW0 := txWrites(s.db), txWrites(db)
	b.ResetTimer()
	for i := range b.N {
		task := tasks[i%n]
		t0 := time.Now()
		if err := s.Apply(ctx, task, notReady(task)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		k := rawKey(i%n, 2+i/n)
		if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(name).Put(k, val) }); err != nil {
			b.Fatal(err)
		}
		storeT += t1.Sub(t0)
		rawT += time.Since(t1)
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(us(storeT), "store_us")
	b.ReportMetric(us(rawT), "raw_us")
	b.ReportMetric(us(storeT)-us(rawT), "overhead_us")
	b.ReportMetric(float64(txWrites(s.db)-storeW0)/float64(b.N), "store_writes")
	b.ReportMetric(float64(txWrites(db)-rawW0)/float64(b.N), "raw_writes")
}

// BenchmarkVsRawBatch measures the target of issue 16 for many callers:
// Store.Apply against raw bbolt Batch writing as many bytes per
// transition, 1,000 callers, real fsync, at three run lengths (2,000
// transitions: two per caller, mostly start-up; 20,000; 100,000). Each
// iteration is a pair of runs, the store's then raw Batch's, each on a
// fresh file, so that both meet the same disk and the same machine load;
// it reports each side's transitions/s over all pairs and their ratio
// ("store/raw"), and each side's CPU time per transition (this process's,
// from getrusage: steadier than wall time on a machine shared with other
// work) and their ratio ("cpu_raw/store"). -benchtime=Nx runs N pairs:
//
//	go test -run='^$' -bench=VsRawBatch -benchtime=5x ./persist/boltstore/
func BenchmarkVsRawBatch(b *testing.B) {
	const callers = 1000
	for _, n := range []int{2000, 20000, 100000} {
		b.Run(fmt.Sprintf("transitions=%d", n), func(b *testing.B) {
			var storeT, rawT, storeCPU, rawCPU time.Duration
			for range b.N {
				b.StopTimer()
				st, sc := timeStoreRun(b, callers, n)
				rt, rc := timeRawBatchRun(b, callers, n)
				storeT, storeCPU, rawT, rawCPU = storeT+st, storeCPU+sc, rawT+rt, rawCPU+rc
				b.StartTimer()
			}
			runs := float64(b.N * n)
			b.ReportMetric(runs/storeT.Seconds(), "store_tr/s")
			b.ReportMetric(runs/rawT.Seconds(), "raw_tr/s")
			b.ReportMetric(rawT.Seconds()/storeT.Seconds(), "store/raw")
			b.ReportMetric(float64(storeCPU.Microseconds())/runs, "store_cpu_us/tr")
			b.ReportMetric(float64(rawCPU.Microseconds())/runs, "raw_cpu_us/tr")
			b.ReportMetric(rawCPU.Seconds()/storeCPU.Seconds(), "cpu_raw/store")
		})
	}
}

// timeStoreRun times n transitions by callers goroutines through
// Store.Apply on a fresh store whose tasks are polling, in wall and CPU
// time.
func timeStoreRun(b *testing.B, callers, n int) (wall, cpu time.Duration) {
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), &Options{NoSync: benchNoSync})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	tasks := make([]*persist.Task, callers)
	for i := range tasks {
		tasks[i] = benchTask()
		tasks[i].Ref = fmt.Sprint("bench-", i)
	}
	if err := s.Create(ctx, tasks...); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i, t := range tasks {
		wg.Go(func() {
			accepted(t)
			errs[i] = s.Apply(ctx, t, &persist.Record{From: states.Submitting, Event: transitions.SubmitAccepted,
				To: states.Polling, ProviderID: t.ProviderID})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return timeCallers(b, callers, n, func(c, _ int) error {
		t := tasks[c]
		return s.Apply(ctx, t, notReady(t))
	})
}

// timeRawBatchRun times n puts of a transition's bytes by callers
// goroutines through bbolt's Batch, on a fresh file holding as much per
// caller as the store's does before its run, in wall and CPU time.
func timeRawBatchRun(b *testing.B, callers, n int) (wall, cpu time.Duration) {
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bbolt.Options{NoSync: benchNoSync})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	name, val := rawPuts, make([]byte, transitionBytes(b))
	fillRaw(b, db, callers, val)
	return timeCallers(b, callers, n, func(c, i int) error {
		k := rawKey(c, 2+i)
		return db.Batch(func(tx *bbolt.Tx) error { return tx.Bucket(name).Put(k, val) })
	})
}

// rawPuts is the bucket the raw side of a benchmark puts into.
var rawPuts = []byte("puts")

// rawKey is the raw side's key of caller c's i-th put.
func rawKey(c, i int) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(c)), uint64(i))
}

// fillRaw creates the raw side's bucket in db and puts two values for each
// of callers, as the store holds a task's first two records before a run.
func fillRaw(b *testing.B, db *bbolt.DB, callers int, val []byte) {
	if err := db.Update(func(tx *bbolt.Tx) error {
		bk, err := tx.CreateBucket(rawPuts)
		if err != nil {
			return err
		}
		for c := range callers {
			for i := range 2 {
				if err := bk.Put(rawKey(c, i), val); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
}

// timeCallers runs n operations on callers goroutines, as runCallers
// does, and returns the wall and CPU time they took.
func timeCallers(b *testing.B, callers, n int, op func(caller, i int) error) (wall, cpu time.Duration) {
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range callers {
		wg.Go(func() {
			<-start
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := op(c, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	c0 := processCPU()
	t := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t)
	used := processCPU() - c0
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return elapsed, used
}

// processCPU returns the user and system time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// txWrites returns the writes db's transactions have made so far.
func txWrites(db *bbolt.DB) int64 {
	st := db.Stats()
	return st.TxStats.GetWrite()
}
