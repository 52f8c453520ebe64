package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync/atomic"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
)

// recordChunk is how many tasks of a --from file one transaction records.
// Memory while recording holds one chunk, whatever the file's size; a
// chunk shares one commit (one fsync).
const recordChunk = 1000

// taskFile is run's --from input, read twice: once to check every line
// before anything is stored, once to record the tasks. Standard input and
// other streams that cannot be read again (a pipe, a FIFO) are spooled to
// an unlinked temporary file (0600) on the first read.
type taskFile struct {
	name string
	f    *os.File  // read twice: the file itself, or the spooled copy
	in   io.Reader // the stream to spool on the first read; nil: f is the file
	src  *os.File  // a named stream that cannot be read again, to close
}

func openTaskFile(name string, stdin io.Reader) (*taskFile, error) {
	if name == "-" {
		return spool(name, stdin, nil)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, usageErr("--from %s: %s", name, fsProblem(err))
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, usageErr("--from %s: a directory, not a file", name)
	}
	if _, err := f.Seek(0, io.SeekCurrent); err != nil {
		t, err := spool(name, f, f)
		if err != nil {
			f.Close()
		}
		return t, err
	}
	return &taskFile{name: name, f: f}, nil
}

func spool(name string, in io.Reader, src *os.File) (*taskFile, error) {
	f, err := os.CreateTemp("", "captchafsm-run-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("--from %s: a temporary copy: %w", name, err)
	}
	// Unlinked at once: the copy (which may hold proxy passwords) goes
	// with the process, however it ends.
	_ = os.Remove(f.Name())
	return &taskFile{name: name, f: f, in: in, src: src}, nil
}

// first returns the reader of the first pass. A stream is copied to the
// temporary file as it is read.
func (t *taskFile) first() io.Reader {
	if t.in == nil {
		return t.f
	}
	return io.TeeReader(t.in, t.f)
}

// again returns the reader of the second pass: the file from its start.
func (t *taskFile) again() (io.Reader, error) {
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("--from %s: read again: %w", t.name, err)
	}
	return t.f, nil
}

func (t *taskFile) Close() {
	if t.src != nil {
		t.src.Close()
	}
	t.f.Close()
}

// known is what the database holds already of a --from file: its lines
// whose ref names a task with the same request (they add no task), and
// those tasks that had settled (their results are reported at once).
type known struct {
	lines   map[int]bool
	settled []*persist.Task // without their parameters
}

// matchRefs reads a checked --from file and looks up every ref in the
// database, storing nothing: a ref that names a task with another method
// or other parameters is an error naming the line (and wraps
// engine.ErrRefConflict), as the engine's SubmitMany refuses it, but before
// any of the file is recorded. done is told the lines read so far.
func matchRefs(ctx context.Context, store persist.Store, name string, r io.Reader, done *atomic.Int64) (*known, error) {
	k := &known{lines: map[int]bool{}}
	err := scanTasks(name, r, func(line int, req engine.Request) error {
		done.Store(int64(line))
		if req.Ref == "" {
			return nil
		}
		old, err := store.GetByRef(ctx, req.Ref)
		switch {
		case errors.Is(err, persist.ErrNotFound):
			return nil
		case err != nil:
			return fmt.Errorf("--from %s: line %d: ref %q: %w", name, line, req.Ref, err)
		case old.Method != req.Method || !maps.Equal(old.Params, req.Params):
			return &exitError{code: ExitUsage, err: fmt.Errorf("--from %s: line %d: %w: ref %q is task %s, a %s request with other parameters; use another ref, or the same request to attach to that task",
				name, line, engine.ErrRefConflict, req.Ref, old.ID, old.Method)}
		}
		k.lines[line] = true
		if old.State.Settled() {
			old.Params = nil
			k.settled = append(k.settled, old)
		}
		return nil
	})
	return k, err
}

// recordTasks stores every task of a checked --from file but the lines
// the database knows already, recordChunk per transaction, before any
// engine runs: nothing is sent until the whole file is durable. It
// returns how many it stored; done is told the number of tasks handled so
// far.
func recordTasks(ctx context.Context, store persist.Store, name string, r io.Reader, skip map[int]bool, done *atomic.Int64) (int, error) {
	added := 0
	chunk := make([]*persist.Task, 0, recordChunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if err := store.Create(ctx, chunk...); err != nil {
			return err
		}
		added += len(chunk)
		done.Add(int64(len(chunk)))
		clear(chunk)
		chunk = chunk[:0]
		return nil
	}
	err := scanTasks(name, r, func(line int, req engine.Request) error {
		if skip[line] {
			done.Add(1)
			return nil
		}
		chunk = append(chunk, engine.NewTask(req, time.Now()))
		if len(chunk) == recordChunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return added, err
}

// tally shows a count that grows while a long step runs, on stderr: redrawn
// in place every 100ms on a terminal, else one line every `every`. A step
// shorter than that shows nothing; a longer one ends with its final count.
type tally struct {
	w      io.Writer
	bar    bool
	render func() string
	shown  bool
	stop   chan struct{}
	done   chan struct{}
}

func startTally(w io.Writer, bar bool, every time.Duration, render func() string) *tally {
	t := &tally{w: w, bar: bar, render: render, stop: make(chan struct{}), done: make(chan struct{})}
	if bar {
		every = 100 * time.Millisecond
	}
	go func() {
		defer close(t.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				t.draw()
			case <-t.stop:
				return
			}
		}
	}()
	return t
}

func (t *tally) draw() {
	t.shown = true
	if t.bar {
		fmt.Fprint(t.w, "\r\033[K"+t.render())
		return
	}
	fmt.Fprintln(t.w, t.render())
}

// end stops the tally and shows the final count if a count was shown.
func (t *tally) end() {
	close(t.stop)
	<-t.done
	if !t.shown {
		return
	}
	t.draw()
	if t.bar {
		fmt.Fprintln(t.w)
	}
}
