package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/persist/pgstore"
	"github.com/captchafsm/captchafsm/provider"
)

// apiKey returns the key from --key-file, else from $CAPTCHAFSM_API_KEY,
// checked (32 hex characters). No error ever repeats it.
func (a *app) apiKey() (string, error) {
	if a.keyFile != "" {
		b, err := os.ReadFile(a.keyFile)
		if err != nil {
			return "", usageErr("--key-file %s: %s", a.keyFile, fsProblem(err))
		}
		key := strings.TrimSpace(string(b))
		if provider.ValidateKey(key) != nil {
			return "", usageErr("--key-file %s: the key must be 32 hex characters on one line", a.keyFile)
		}
		return key, nil
	}
	key := strings.TrimSpace(a.opts.getenv(EnvAPIKey))
	if key == "" {
		return "", usageErr("no API key: set %s or pass --key-file FILE (try `captchafsm demo`, which needs none)", EnvAPIKey)
	}
	if provider.ValidateKey(key) != nil {
		return "", usageErr("%s: the key must be 32 hex characters", EnvAPIKey)
	}
	return key, nil
}

// loadPolicy reads --policy, or returns the defaults.
func (a *app) loadPolicy() (engine.Policy, error) {
	if a.policy == "" {
		return engine.DefaultPolicy(), nil
	}
	b, err := os.ReadFile(a.policy)
	if err != nil {
		return engine.Policy{}, usageErr("--policy %s: %s", a.policy, fsProblem(err))
	}
	p, err := engine.ParsePolicy(b)
	if err != nil {
		return engine.Policy{}, usageErr("--policy %s: %s", a.policy, strings.TrimPrefix(err.Error(), "engine: policy: "))
	}
	return p, nil
}

// client checks the key, the API URL and the policy, in that order, and
// returns a client; nothing is sent.
func (a *app) client() (*provider.Client, engine.Policy, error) {
	key, err := a.apiKey()
	if err != nil {
		return nil, engine.Policy{}, err
	}
	pol, err := a.loadPolicy()
	if err != nil {
		return nil, engine.Policy{}, err
	}
	base := a.apiBase()
	c, err := provider.New(provider.Config{BaseURL: base.value, Key: key, Timeout: pol.WithDefaults().RequestTimeout})
	if err != nil {
		var fe *provider.FieldError
		if errors.As(err, &fe) && fe.Field == "base_url" {
			return nil, engine.Policy{}, usageErr("%s %q: %s", base.source, base.value, fe.Problem)
		}
		return nil, engine.Policy{}, usageErr("%v", err)
	}
	return c, pol, nil
}

// openStore opens the database: a bbolt file, or PostgreSQL when --db is a
// postgres:// URL (a store several engines share). With create false a
// missing file is an error rather than a new empty database.
func (a *app) openStore(create bool) (persist.Store, error) {
	db := a.dbPath()
	return openStoreAt(db, create, a.opts.lockTimeout())
}

// sharedDB reports whether --db names a database that engines share (a
// PostgreSQL URL): their engines run as a fleet.
func (a *app) sharedDB() bool { return pgstore.IsURL(a.dbPath().value) }

// shown is the setting's value as messages may print it: a PostgreSQL
// URL without its password.
func (s setting) shown() string {
	if pgstore.IsURL(s.value) {
		if u, err := url.Parse(s.value); err == nil {
			return u.Redacted()
		}
		return "postgres://…"
	}
	return s.value
}

// pgOpenTimeout bounds connecting to PostgreSQL and migrating its schema.
const pgOpenTimeout = 30 * time.Second

func openStoreAt(db setting, create bool, lock time.Duration) (persist.Store, error) {
	name := db.value
	if name == "" {
		return nil, usageErr("%s: empty path", db.source)
	}
	if pgstore.IsURL(name) {
		// The URL may hold a password: errors show it redacted.
		shown := setting{db.shown(), db.source}
		ctx, cancel := context.WithTimeout(context.Background(), pgOpenTimeout)
		defer cancel()
		s, err := pgstore.Open(ctx, name, nil)
		if err != nil {
			return nil, storeErr(shown, err)
		}
		return s, nil
	}
	if !create {
		// A mistyped path, or the wrong directory, must not give an empty
		// database that the command then reports on as if it were the real
		// one (resume: "nothing to resume", exit 0).
		if _, err := os.Stat(name); errors.Is(err, fs.ErrNotExist) {
			return nil, usageErr("%s %s: no such file; this command creates no database (run, solve, serve and gateway do): check the path", db.source, name)
		} else if err != nil {
			return nil, usageErr("%s %s: %s", db.source, name, fsProblem(err))
		}
	}
	s, err := boltstore.Open(name, &boltstore.Options{LockTimeout: lock})
	if err != nil {
		return nil, storeErr(db, err)
	}
	return s, nil
}

// storeErr turns an open error into one line naming the file.
func storeErr(db setting, err error) error {
	switch {
	case errors.Is(err, persist.ErrLocked):
		return usageErr("%s %s: database in use by another process (a running captchafsm run, solve, resume, serve, gateway or demo?); wait for it or stop it, or read it through the API of a running serve or gateway (/api/tasks)", db.source, db.value)
	case errors.Is(err, persist.ErrNewerSchema):
		return usageErr("%s %s: written by a newer captchafsm; upgrade this program", db.source, db.value)
	case errors.Is(err, persist.ErrNotOurs):
		return usageErr("%s %s: not a captchafsm database (or damaged); check the path, or move the file aside", db.source, db.value)
	}
	return usageErr("%s %s: %v", db.source, db.value, err)
}

// fsProblem says what is wrong with a file, without Go's "open X:" prefix.
func fsProblem(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// fieldErr names the flag behind a provider.FieldError: the method's flag,
// the image file, or the parameter.
func fieldProblem(err error, image string) error {
	var fe *provider.FieldError
	if !errors.As(err, &fe) {
		return usageErr("%v", err)
	}
	switch {
	case fe.Field == "method":
		return usageErr("--method: %s", fe.Problem)
	case fe.Field == "body" && image != "":
		return usageErr("--image %s: %s", image, fe.Problem)
	}
	return usageErr("--param %s: %s", fe.Field, fe.Problem)
}

// policyHelp is the --policy section of the root command's help: every key
// with its default and its bounds, from the engine's data.
func policyHelp() string {
	var b strings.Builder
	b.WriteString(`--policy FILE is JSON overriding the timing and limits; omitted keys keep
their defaults, and unknown keys or values out of bounds are errors naming
the key. Durations are Go durations ("5s", "1m30s").

`)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  KEY\tDEFAULT\tMIN\tMAX\t")
	for _, k := range engine.PolicyBounds() {
		note := ""
		if k.Note != "" {
			note = "(" + k.Note + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", k.Key, k.Default, k.Min, k.Max, note)
	}
	_ = tw.Flush()
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}
