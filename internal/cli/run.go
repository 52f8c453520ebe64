package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
)

func (a *app) runCmd() *cobra.Command {
	var (
		from        string
		forceMethod bool
	)
	c := &cobra.Command{
		Use:   "run --from FILE.jsonl",
		Short: "Solve a batch of tasks from a JSON Lines file",
		Long: `Solve a batch: each line of the file is one task,

  {"method": "...", "params": {...}, "ref": "optional"}

Every line is checked first; a bad one is reported with its line number and
field, and nothing is stored or sent. A method the provider does not document
(a typo such as hcapcha) is refused as solve refuses it; --force-method sends
it anyway, for a method newer than this client. Then every task of the file is recorded
in the database (1,000 per transaction, so memory does not grow with the
file) before the engine starts and the first request leaves: a crash loses
none, and a crash while recording has sent nothing. A line whose ref names a
task of the database with the same request adds no task (running the same
file again is safe); with another request it is refused, naming the line.
Tasks already in flight in the database are driven along. A ref is at most
1,024 bytes of UTF-8 without NUL. An optional "labels" object of strings
(at most 16, 4 KiB in all) is kept with the task and never sent to the
provider: the caller's own data, shown by list --json. "--from -" reads
standard input (copied to an unlinked temporary file, to be read twice).

Output: one line per finished task (id, ref, state, token or code), or with
--json one JSON object per line:
  {"id","ref","state","token","code","submits","polls","resubmits","cost"}
A summary goes to stderr; on a terminal a progress bar too (while checking
and recording a large file, a count every 2 seconds elsewhere).

Exit status: 0 all Done; 1 bad input (nothing sent); 2 some task Failed;
3 some task NeedsAccountFix; 4 the database failed to record paid answers
for too long (they are named; resume records them as possibly charged);
130 interrupted (resume continues).`,
		Example: `  cat > tasks.jsonl <<'END'
  {"method":"userrecaptcha","params":{"googlekey":"6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-","pageurl":"https://example.com"},"ref":"login-1"}
  {"method":"turnstile","params":{"sitekey":"0x4AAAAAAAC3DHQFLr1GavRN","pageurl":"https://example.com"},"ref":"signup-7"}
  END
  captchafsm run --from tasks.jsonl
  captchafsm run --from tasks.jsonl --json | jq -r 'select(.state=="Done") | .token'
  producer | captchafsm run --from -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return interrupted(cmd.Context(), a.run(cmd, from, forceMethod))
		},
	}
	c.Flags().StringVar(&from, "from", "", `JSON Lines file of tasks ("-" reads stdin)`)
	c.Flags().BoolVar(&forceMethod, "force-method", false, "send lines whose method this client does not know (warns instead of refusing)")
	return c
}

// taskLine is one line of a --from file.
type taskLine struct {
	Method string                     `json:"method"`
	Params map[string]json.RawMessage `json:"params"`
	Ref    string                     `json:"ref"`
	Labels map[string]string          `json:"labels"`
}

// maxTaskLine bounds one line of a --from file: a base64 image of 100 kB fits.
const maxTaskLine = 4 << 20

// scanTasks calls each with every task of a --from file, in order, with
// its line number; blank lines are skipped. A bad line stops it with an
// error naming the file and the line, as does an error of each.
func scanTasks(name string, r io.Reader, each func(line int, req engine.Request) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxTaskLine)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		req, err := parseTaskLine(line)
		if err != nil {
			return usageErr("--from %s: line %d: %v", name, n, err)
		}
		if err := each(n, req); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return usageErr("--from %s: line %d: longer than 4 MB", name, n+1)
		}
		return usageErr("--from %s: %s", name, fsProblem(err))
	}
	return nil
}

// checkTasks reads a --from file once and checks every line, a ref given
// twice included, and returns the number of tasks. It keeps no task unless
// keep (if not nil) does; progress (if not nil) is told the number of lines
// read so far; method (if not nil) checks each line's method.
func checkTasks(name string, r io.Reader, progress func(lines int), keep func(engine.Request), method func(line int, m string) error) (int, error) {
	refLine := map[string]int{}
	count := 0
	err := scanTasks(name, r, func(n int, req engine.Request) error {
		if method != nil {
			if err := method(n, req.Method); err != nil {
				return err
			}
		}
		if req.Ref != "" {
			if prev, ok := refLine[req.Ref]; ok {
				return usageErr("--from %s: line %d: ref %q repeats line %d", name, n, req.Ref, prev)
			}
			refLine[req.Ref] = n
		}
		count++
		if progress != nil {
			progress(n)
		}
		if keep != nil {
			keep(req)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if count == 0 {
		return 0, usageErr("--from %s: no tasks in the file", name)
	}
	return count, nil
}

// readTasks reads and checks every line of a --from file and returns the
// tasks, all in memory (demo-engine's batches are small). The error names
// the file and the line.
func readTasks(name string, r io.Reader) ([]engine.Request, error) {
	var reqs []engine.Request
	if _, err := checkTasks(name, r, nil, func(req engine.Request) { reqs = append(reqs, req) }, nil); err != nil {
		return nil, err
	}
	return reqs, nil
}

func parseTaskLine(line []byte) (engine.Request, error) {
	var tl taskLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tl); err != nil {
		return engine.Request{}, fmt.Errorf("not a task object: %v", jsonProblem(err))
	}
	if dec.More() {
		return engine.Request{}, errors.New("not a task object: more than one JSON value on the line")
	}
	// Checked here, before anything is stored: a store would refuse the
	// ref only at Create, naming a task id that was never stored.
	if err := persist.ValidateRef(tl.Ref); err != nil {
		return engine.Request{}, err
	}
	params := make(map[string]string, len(tl.Params))
	for k, raw := range tl.Params {
		v, err := scalar(raw)
		if err != nil {
			return engine.Request{}, fmt.Errorf("params.%s: %v", k, err)
		}
		params[k] = v
	}
	if err := provider.Validate(provider.Request{Method: tl.Method, Params: params}); err != nil {
		var fe *provider.FieldError
		if errors.As(err, &fe) {
			if fe.Field == "method" {
				return engine.Request{}, fmt.Errorf("method: %s", fe.Problem)
			}
			return engine.Request{}, fmt.Errorf("params.%s: %s", fe.Field, fe.Problem)
		}
		return engine.Request{}, err
	}
	if err := persist.ValidateOptions(persist.TaskOptions{Labels: tl.Labels}); err != nil {
		if oe, ok := errors.AsType[*persist.OptionError](err); ok {
			return engine.Request{}, fmt.Errorf("%s: %s", oe.Field, oe.Problem)
		}
		return engine.Request{}, err
	}
	return engine.Request{Method: tl.Method, Params: params, Ref: tl.Ref, Labels: tl.Labels}, nil
}

// scalar turns a parameter's JSON value into the API's text: strings as
// they are, numbers and booleans written out (true is 1, as the API wants).
func scalar(raw json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return string(bytes.TrimSpace(raw)), nil
	case bool:
		if x {
			return "1", nil
		}
		return "0", nil
	case nil:
		return "", errors.New("null is not a value")
	}
	return "", errors.New("want a string, number or boolean")
}

// jsonProblem shortens encoding/json's messages.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "invalid JSON at byte " + strconv.FormatInt(se.Offset, 10) + ": " + se.Error()
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s: want %s, got %s", te.Field, te.Type, te.Value)
	}
	return err.Error()
}

func (a *app) run(cmd *cobra.Command, from string, forceMethod bool) error {
	if from == "" {
		return usageErr("run: --from FILE is required")
	}
	in, err := openTaskFile(from, cmd.InOrStdin())
	if err != nil {
		return err
	}
	defer in.Close()
	stderr := cmd.ErrOrStderr()
	bar := a.opts.terminal(stderr)

	// Every line is checked before anything is opened, stored or sent.
	var lines atomic.Int64
	t := startTally(stderr, bar, 2*time.Second, func() string {
		return fmt.Sprintf("captchafsm: checking %s: %d lines", from, lines.Load())
	})
	// A method the client does not know (a typo such as hcapcha) is
	// refused as solve refuses it; --force-method sends it, said once per
	// method.
	warned := map[string]bool{}
	method := func(n int, m string) error {
		if _, known := provider.LookupMethod(m); known {
			return nil
		}
		if !forceMethod {
			return usageErr("--from %s: line %d: method: %s is not a method of the API%s; --force-method sends it anyway", from, n, m, suggestion(m))
		}
		if !warned[m] {
			warned[m] = true
			fmt.Fprintf(stderr, "captchafsm: warning: --from %s: line %d: method %s is not a method of the API%s; sent as --force-method asks\n",
				printable(from), n, printable(m), suggestion(m))
		}
		return nil
	}
	total, err := checkTasks(from, in.first(), func(n int) { lines.Store(int64(n)) }, nil, method)
	t.end()
	if err != nil {
		return err
	}
	client, pol, err := a.client()
	if err != nil {
		return err
	}
	fp, err := a.failpoint()
	if err != nil {
		return err
	}
	r, err := in.again()
	if err != nil {
		return err
	}
	store, err := a.openStore(true)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	// The refs the database knows: their lines attach to their tasks, or
	// are refused, naming the line, when they name another request; all
	// before anything of the file is stored.
	k := &known{lines: map[int]bool{}}
	if counts, err := store.Count(ctx); err != nil {
		store.Close()
		return interrupted(ctx, fmt.Errorf("%s: %w", a.dbPath().shown(), err))
	} else if sum(counts) > 0 {
		var read atomic.Int64
		t = startTally(stderr, bar, 2*time.Second, func() string {
			return fmt.Sprintf("captchafsm: looking up refs: %d/%d lines", read.Load(), lines.Load())
		})
		k, err = matchRefs(ctx, store, from, r, &read)
		t.end()
		if err == nil {
			r, err = in.again()
		}
		if err != nil {
			store.Close()
			return interrupted(ctx, err)
		}
	}
	if total <= recordChunk {
		return a.runSmall(cmd, fp, store, client, pol, from, r)
	}

	// Every task of the file is durable before an engine starts: nothing
	// is sent until then, and a crash while recording sends nothing.
	var done atomic.Int64
	t = startTally(stderr, bar, 2*time.Second, func() string {
		return fmt.Sprintf("captchafsm: recording %d/%d tasks", done.Load(), total)
	})
	added, err := recordTasks(ctx, store, from, r, k.lines, &done)
	t.end()
	if err != nil {
		store.Close()
		if ctx.Err() != nil {
			return errInterrupted
		}
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return fmt.Errorf("--from %s: recorded %d of %d tasks, then: %w; nothing was sent: `captchafsm resume` sends those recorded, and running the file again adds the others (by ref)",
			from, added, total, err)
	}
	b, err := a.startBatch(cmd, fp, store, client, pol, false)
	if err != nil {
		return err
	}
	// The file's tasks that had settled before are reported at once.
	b.tr.mu.Lock()
	for _, task := range k.settled {
		b.ids[task.ID] = true
	}
	b.tr.mu.Unlock()
	for _, task := range k.settled {
		b.tr.add(engine.TaskOf(task))
	}
	if skipped := total - added; skipped > 0 {
		fmt.Fprintf(stderr, "captchafsm: %d of %d tasks added; %d refs were already in the database\n", added, total, skipped)
	}
	return b.drive(ctx)
}

// runSmall runs a file of at most recordChunk tasks: read whole, and
// recorded in one transaction through the engine's SubmitMany once it
// runs. Recording before the engine starts, as larger files are, makes the
// engine's resume hold every submit for 3 s (it takes tasks just recorded
// for tasks a process just sent), which a small file should not pay.
func (a *app) runSmall(cmd *cobra.Command, fp *failpoint, store persist.Store, client *provider.Client, pol engine.Policy, from string, r io.Reader) error {
	var reqs []engine.Request
	err := scanTasks(from, r, func(_ int, req engine.Request) error {
		reqs = append(reqs, req)
		return nil
	})
	if err != nil {
		store.Close()
		return err
	}
	b, err := a.startBatch(cmd, fp, store, client, pol, false)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	ids, added, err := b.eng.SubmitMany(ctx, reqs)
	if err == nil {
		err = b.watch(ctx, ids)
	}
	if err != nil {
		_ = b.eng.Close()
		b.store.Close()
		return usageErr("--from %s: %v", from, err)
	}
	if skipped := len(reqs) - added; skipped > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "captchafsm: %d of %d tasks added; %d refs were already in the database\n", added, len(reqs), skipped)
	}
	return b.drive(ctx)
}

// sum is the number of tasks of a Count.
func sum(counts map[states.State]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}
