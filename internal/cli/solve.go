package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/states"
	"github.com/captchafsm/captchafsm/transitions"
)

type solveOpts struct {
	method      string
	params      []string
	image       string
	ref         string
	forceMethod bool
}

func (a *app) solveCmd() *cobra.Command {
	o := &solveOpts{}
	c := &cobra.Command{
		Use:   "solve --method M [--param k=v]... [--image FILE]",
		Short: "Solve one CAPTCHA and print its token",
		Long: `Solve one CAPTCHA: the task is recorded in the database, sent, polled until it
settles, and its token printed on stdout (with --json the result object).

--image reads an image file and sends it base64-encoded (method base64 unless
--method says otherwise). Parameters are the API's own names (pageurl,
googlekey, sitekey, proxy, proxytype, ...); they are checked before anything is
sent. A method the provider does not document (a typo such as hcapcha) is
refused, with the nearest known method; --force-method sends it anyway, for a
method newer than this client. Other tasks waiting in the database are driven
along while this one runs. When stderr is a terminal, the task's moves show
there as they happen (submitted, accepted, each poll, solved), as run's
progress bar does.

Exit status: 0 solved; 1 bad input (nothing sent); 2 the task failed; 3 the
account needs a fix (see account-fixed); 4 the database failed to record a
paid answer for too long (named; resume records it as possibly charged);
130 interrupted (the task stays in the database; resume continues it).`,
		Example: `  export CAPTCHAFSM_API_KEY=...   # or --key-file FILE
  captchafsm solve --image captcha.png
  captchafsm solve --method userrecaptcha \
      --param googlekey=6Le-wvkSAAAAAPBMRTvw0Q4Muexq9bi0DJwx_mJ- \
      --param pageurl=https://example.com/login
  captchafsm solve --method turnstile --param sitekey=0x4AAAAAAAC3DHQFLr1GavRN \
      --param pageurl=https://example.com --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return interrupted(cmd.Context(), a.solve(cmd, o)) },
	}
	f := c.Flags()
	f.StringVar(&o.method, "method", "", "the API's method: base64, post, userrecaptcha, hcaptcha, turnstile, ...")
	f.StringArrayVar(&o.params, "param", nil, "a parameter as key=value (repeatable)")
	f.StringVar(&o.image, "image", "", "an image file (PNG, JPEG or GIF, 100 B to 100 kB), sent base64-encoded")
	f.StringVar(&o.ref, "ref", "", "a name of your own for the task (unique in the database)")
	f.BoolVar(&o.forceMethod, "force-method", false, "send a --method this client does not know (warns instead of refusing)")
	return c
}

// request builds and checks the request; nothing is opened or sent.
func (o *solveOpts) request() (engine.Request, error) {
	params := map[string]string{}
	for _, kv := range o.params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return engine.Request{}, usageErr("--param %q: want key=value", redactParam(kv))
		}
		if _, dup := params[k]; dup {
			return engine.Request{}, usageErr("--param %s: given twice", k)
		}
		params[k] = v
	}
	method := o.method
	if o.image != "" {
		if _, ok := params["body"]; ok {
			return engine.Request{}, usageErr("--param body: not with --image, which sets it")
		}
		data, err := os.ReadFile(o.image)
		if err != nil {
			return engine.Request{}, usageErr("--image %s: %s", o.image, fsProblem(err))
		}
		params["body"] = base64.StdEncoding.EncodeToString(data)
		if method == "" {
			method = "base64"
		}
	}
	if method == "" {
		return engine.Request{}, usageErr("--method is required (or --image FILE for an image)")
	}
	if err := persist.ValidateRef(o.ref); err != nil {
		return engine.Request{}, usageErr("--%v", err)
	}
	req := engine.Request{Method: method, Params: params, Ref: o.ref}
	if err := provider.Validate(provider.Request{Method: method, Params: params}); err != nil {
		return engine.Request{}, fieldProblem(err, o.image)
	}
	if _, known := provider.LookupMethod(method); !known && !o.forceMethod {
		return engine.Request{}, usageErr("--method %s: not a method of the API%s; --force-method sends it anyway", method, suggestion(method))
	}
	return req, nil
}

// suggestion is "(did you mean M?)" for the known method nearest to a
// misspelt one, "" when none is near.
func suggestion(method string) string {
	if s := provider.SuggestMethod(method); s != "" {
		return " (did you mean " + s + "?)"
	}
	return ""
}

// redactParam hides a proxy password in a parameter echoed in an error.
func redactParam(kv string) string {
	if strings.Contains(kv, "@") {
		return provider.RedactProxy(kv)
	}
	return kv
}

func (a *app) solve(cmd *cobra.Command, o *solveOpts) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	if _, known := provider.LookupMethod(req.Method); !known {
		fmt.Fprintf(cmd.ErrOrStderr(), "captchafsm: warning: --method %s is not a method of the API%s; sending it as --force-method asks\n", printable(req.Method), suggestion(req.Method))
	}
	client, pol, err := a.client()
	if err != nil {
		return err
	}
	b, err := a.openBatch(cmd, client, pol, true, true)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	// On a terminal, the task's moves show on stderr while it is solved.
	var mv *moves
	if a.opts.terminal(cmd.ErrOrStderr()) {
		mv = newMoves(cmd.ErrOrStderr())
		b.moves.Store(mv)
	}
	id, err := b.eng.Submit(ctx, req)
	if err != nil {
		_ = b.eng.Close()
		mv.end()
		b.store.Close()
		if errors.Is(err, persist.ErrDuplicateRef) {
			return usageErr("--ref %s: a task with this ref exists", o.ref)
		}
		return usageErr("%v", err)
	}
	mv.follow(id, req)
	_, werr := b.eng.Wait(ctx, id)
	cerr := b.eng.Close() // every hook has run once Close returns
	mv.end()
	defer b.store.Close()
	if werr != nil && isCtxErr(ctx, werr) {
		return errInterrupted
	}
	if cerr != nil {
		return fmt.Errorf("engine: close: %w", cerr)
	}
	t, err := b.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	out := cmd.OutOrStdout()
	if a.json {
		enc := json.NewEncoder(out)
		if err := enc.Encode(outcomeOf(engine.TaskOf(t))); err != nil {
			return err
		}
	} else if t.State == states.Done {
		fmt.Fprintln(out, printable(t.Token))
	}
	switch t.State {
	case states.Done:
		return nil
	case states.NeedsAccountFix:
		return &exitError{code: ExitNeedsAccountFix, err: fmt.Errorf("task %s needs an account fix: %s; %s", id, t.Code, fixOf(t.Code))}
	case states.Failed:
		return &exitError{code: ExitFailed, err: fmt.Errorf("task %s failed: %s; see `captchafsm history %s`", id, describeCode(t.Code), id)}
	}
	return &exitError{code: ExitFailed, err: fmt.Errorf("task %s stopped in %s; `captchafsm resume` continues it", id, t.State)}
}

// describeCode is a code with its meaning from the catalogue.
func describeCode(code string) string {
	if e, ok := transitions.Lookup(code); ok {
		return code + " (" + strings.TrimSuffix(e.Meaning, ".") + ")"
	}
	switch code {
	case transitions.CodePollTimeout:
		return code + " (no answer within poll_timeout)"
	case transitions.CodeTransport:
		return code + " (the API could not be reached)"
	case "":
		return "no code"
	}
	return code
}

// fixOf is what a person should do about an account code.
func fixOf(code string) string {
	if e, ok := transitions.Lookup(code); ok {
		return strings.TrimSuffix(e.Fix, ".")
	}
	return "fix the account, then run account-fixed"
}
