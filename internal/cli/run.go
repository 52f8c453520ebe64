package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
)

func (a *app) runCmd() *cobra.Command {
	var from string
	c := &cobra.Command{
		Use:   "run --from FILE.jsonl",
		Short: "Solve a batch of tasks from a JSON Lines file",
		Long: `Solve a batch: each line of the file is one task,

  {"method": "...", "params": {...}, "ref": "optional"}

Every line is checked first; a bad one is reported with its line number and
nothing is sent. Then every task of the file is recorded in the database in
one transaction before the first request leaves, so a crash loses none; a
line whose ref is already in the database adds no task (running the same file
again is safe). Tasks already in flight in the database are driven along.

Output: one line per finished task (id, ref, state, token or code), or with
--json one JSON object per line:
  {"id","ref","state","token","code","submits","polls","resubmits","cost"}
A summary goes to stderr; on a terminal a progress bar too.

Exit status: 0 all Done; 1 bad input (nothing sent); 2 some task Failed;
3 some task NeedsAccountFix; 130 interrupted (resume continues).`,
		Example: `  cat > tasks.jsonl <<'END'
  {"method":"userrecaptcha","params":{"googlekey":"6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ-","pageurl":"https://example.com"},"ref":"login-1"}
  {"method":"turnstile","params":{"sitekey":"0x4AAAAAAAC3DHQFLr1GavRN","pageurl":"https://example.com"},"ref":"signup-7"}
  END
  captchafsm run --from tasks.jsonl
  captchafsm run --from tasks.jsonl --json | jq -r 'select(.state=="Done") | .token'
  producer | captchafsm run --from -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return interrupted(cmd.Context(), a.run(cmd, from)) },
	}
	c.Flags().StringVar(&from, "from", "", `JSON Lines file of tasks ("-" reads stdin)`)
	return c
}

// taskLine is one line of a --from file.
type taskLine struct {
	Method string                     `json:"method"`
	Params map[string]json.RawMessage `json:"params"`
	Ref    string                     `json:"ref"`
}

// readTasks reads and checks every line of a --from file. The error names
// the file and the line.
func readTasks(name string, r io.Reader) ([]engine.Request, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20) // a base64 image of 100 kB fits
	var reqs []engine.Request
	refLine := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		req, err := parseTaskLine(line)
		if err != nil {
			return nil, usageErr("--from %s: line %d: %v", name, n, err)
		}
		if req.Ref != "" {
			if prev, ok := refLine[req.Ref]; ok {
				return nil, usageErr("--from %s: line %d: ref %q repeats line %d", name, n, req.Ref, prev)
			}
			refLine[req.Ref] = n
		}
		reqs = append(reqs, req)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, usageErr("--from %s: line %d: longer than 4 MB", name, n+1)
		}
		return nil, usageErr("--from %s: %s", name, fsProblem(err))
	}
	if len(reqs) == 0 {
		return nil, usageErr("--from %s: no tasks in the file", name)
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
	return engine.Request{Method: tl.Method, Params: params, Ref: tl.Ref}, nil
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

func (a *app) run(cmd *cobra.Command, from string) error {
	if from == "" {
		return usageErr("run: --from FILE is required")
	}
	var r io.Reader
	if from == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(from)
		if err != nil {
			return usageErr("--from %s: %s", from, fsProblem(err))
		}
		defer f.Close()
		r = f
	}
	reqs, err := readTasks(from, r)
	if err != nil {
		return err
	}
	client, pol, err := a.client()
	if err != nil {
		return err
	}
	b, err := a.openBatch(cmd, client, pol, false, true)
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
