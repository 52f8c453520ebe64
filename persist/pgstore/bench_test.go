package pgstore_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/persist/pgstore"
	"github.com/captchafsm/captchafsm/persist/pgstore/pgstoretest"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

// BenchmarkApply measures durable transitions per second (one op = one
// Apply: a history record and the task's update, committed) by 1, 16 and
// 64 concurrent callers, on bbolt (fsync on) and on PostgreSQL (fsync and
// synchronous_commit as the server has them), in the same run. Each
// caller drives a task of its own through Polling → Polling (not ready).
// On PostgreSQL it also reports what a transition costs (see meter).
func BenchmarkApply(b *testing.B) {
	for _, backend := range []string{"bbolt", "postgres"} {
		for _, callers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("store=%s/callers=%d", backend, callers), func(b *testing.B) {
				s, m := benchStore(b, backend)
				ctx := context.Background()
				tasks := make([]*persist.Task, callers)
				for i := range tasks {
					tasks[i] = &persist.Task{ID: persist.NewID(), Method: "post", Params: map[string]string{"i": strconv.Itoa(i)}}
				}
				require.NoError(b, s.Create(ctx, tasks...))
				for _, t := range tasks {
					require.NoError(b, step(s, t, transitions.SubmitAccepted, states.Polling))
				}
				b.ResetTimer()
				m.start(b)
				var wg sync.WaitGroup
				errs := make([]error, callers)
				for c := range callers {
					n := b.N / callers
					if c < b.N%callers {
						n++
					}
					wg.Go(func() {
						t := tasks[c]
						for range n {
							t.Polls++
							if err := step(s, t, transitions.NotReady, states.Polling); err != nil {
								errs[c] = err
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				for _, err := range errs {
					require.NoError(b, err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
				m.report(b, b.N)
			})
		}
	}
}

// benchStore opens a store of the backend and, for PostgreSQL, a meter of
// its server backends.
func benchStore(b *testing.B, backend string) (persist.Store, *meter) {
	if backend == "postgres" {
		schema := pgstoretest.Schema(b)
		app := "bench-" + schema
		s := openNamed(b, schema, app, 64)
		return s, newMeter(b, app)
	}
	s, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"), nil)
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s, newMeter(b, "")
}

// openNamed opens a store in schema whose connections carry the
// application name app (so that meter can find their server processes).
func openNamed(b *testing.B, schema, app string, conns int32) *pgstore.Store {
	u, err := url.Parse(pgstoretest.WithSchema(b, schema))
	require.NoError(b, err)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	s, err := pgstore.Open(context.Background(), u.String(), &pgstore.Options{MaxConns: conns})
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// meter measures what a run of transitions costs: the CPU time of this
// process (the client: the engines' store calls, pgx, the benchmark's own
// loop) and of the server processes serving the connections named app
// (read from /proc, so the server must run on this machine), and the WAL
// the server wrote meanwhile (cluster-wide: other clients of the same
// server add theirs).
type meter struct {
	app       string
	conn      *pgx.Conn
	client    time.Duration
	server    time.Duration
	lsn       string
	clientOK  bool
	serverOK  bool
	walOK     bool
	serverPID map[int]time.Duration
}

func newMeter(b *testing.B, app string) *meter {
	m := &meter{app: app}
	if app == "" {
		return m
	}
	conn, err := pgx.Connect(context.Background(), pgstoretest.URL(b))
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close(context.Background()) })
	m.conn = conn
	return m
}

// start reads the counters before a run.
func (m *meter) start(b *testing.B) {
	m.client, m.clientOK = processCPU()
	if m.conn == nil {
		return
	}
	m.server, m.serverOK = m.serverCPU(b)
	m.walOK = m.conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&m.lsn) == nil
}

// report reports the costs per transition of the run since start.
func (m *meter) report(b *testing.B, transitions int) {
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(transitions) }
	if c, ok := processCPU(); ok && m.clientOK {
		b.ReportMetric(per(c-m.client), "client_us/tr")
	}
	if m.conn == nil {
		return
	}
	if s, ok := m.serverCPU(b); ok && m.serverOK {
		b.ReportMetric(per(s-m.server), "server_us/tr")
	}
	var wal float64
	if m.walOK && m.conn.QueryRow(context.Background(),
		"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8", m.lsn).Scan(&wal) == nil {
		b.ReportMetric(wal/float64(transitions), "wal_B/tr")
	}
}

// serverCPU sums the CPU time of the server processes of the connections
// named m.app, remembering each process's last reading (a connection that
// closed keeps what it used).
func (m *meter) serverCPU(b *testing.B) (time.Duration, bool) {
	rows, err := m.conn.Query(context.Background(),
		"SELECT pid FROM pg_stat_activity WHERE application_name = $1", m.app)
	require.NoError(b, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(b, err)
	if m.serverPID == nil {
		m.serverPID = map[int]time.Duration{}
	}
	for _, pid := range pids {
		if d, ok := procCPU(int(pid)); ok {
			m.serverPID[int(pid)] = d
		}
	}
	var total time.Duration
	for _, d := range m.serverPID {
		total += d
	}
	return total, len(m.serverPID) > 0
}

// procCPU reads a process's user and system time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

// processCPU returns this process's user and system time.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// BenchmarkEngines measures transitions per second of 1, 2 and 4 engines
// sharing one PostgreSQL database the way engines do: each engine (its own
// pool of 16 connections) claims tasks in batches of 64 with a lease and
// drives each through a solve's four steps (submit intent, accepted, not
// ready, solved) with 16 workers. One op = one transition.
func BenchmarkEngines(b *testing.B) {
	for _, engines := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("engines=%d", engines), func(b *testing.B) {
			ctx := context.Background()
			schema := pgstoretest.Schema(b)
			app := "bench-" + schema
			stores := make([]*pgstore.Store, engines)
			for i := range stores {
				stores[i] = openNamed(b, schema, app, 16)
			}
			m := newMeter(b, app)
			const steps = 4
			n := max(b.N/steps, 1)
			for lo := 0; lo < n; lo += 5000 {
				batch := make([]*persist.Task, min(5000, n-lo))
				for i := range batch {
					batch[i] = &persist.Task{ID: persist.NewID(), Method: "post", Params: map[string]string{"k": "v"}}
				}
				require.NoError(b, stores[0].Create(ctx, batch...))
			}
			b.ResetTimer()
			m.start(b)
			var wg sync.WaitGroup
			errs := make([]error, engines)
			for e := range engines {
				wg.Go(func() { errs[e] = benchEngine(ctx, stores[e], "engine-"+strconv.Itoa(e)) })
			}
			wg.Wait()
			b.StopTimer()
			for _, err := range errs {
				require.NoError(b, err)
			}
			counts, err := stores[0].Count(ctx)
			require.NoError(b, err)
			require.Equal(b, map[states.State]int{states.Done: n}, counts)
			b.ReportMetric(float64(n*steps)/b.Elapsed().Seconds(), "transitions/s")
			m.report(b, n*steps)
		})
	}
}

// benchEngine claims and drives tasks until none is left to claim.
func benchEngine(ctx context.Context, s *pgstore.Store, owner string) error {
	const workers = 16
	work := make(chan *persist.Task, 64)
	errs := make(chan error, workers+1)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for t := range work {
				for _, st := range []struct {
					ev transitions.Event
					to states.State
				}{
					{transitions.SubmitSending, states.Submitting},
					{transitions.SubmitAccepted, states.Polling},
					{transitions.NotReady, states.Polling},
					{transitions.Solved, states.Done},
				} {
					if err := step(s, t, st.ev, st.to); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	for {
		got, err := s.Claim(ctx, owner, 64, time.Minute)
		if err != nil {
			errs <- err
			break
		}
		if len(got) == 0 {
			break
		}
		for _, t := range got {
			work <- t
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}
