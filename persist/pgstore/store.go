package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/captchafsm/captchafsm/persist"
)

// DefaultSchema is the PostgreSQL schema (namespace) that holds the store's
// tables when Options.Schema is empty.
const DefaultSchema = "captchafsm"

// DefaultMaxConns is the pool size when neither Options.MaxConns nor the
// URL's pool_max_conns sets one: enough for an engine's workers to share
// commits (PostgreSQL flushes the WAL of concurrent commits together).
const DefaultMaxConns = 16

// DefaultWriteTimeout bounds a write that has begun when
// Options.WriteTimeout is zero.
const DefaultWriteTimeout = time.Minute

// Log keys.
const (
	logDB     = "db"
	logSchema = "schema"
	logCount  = "count"
	logFrom   = "from_version"
	logTo     = "to_version"
)

// Options configures Open. The zero value (or nil) means the defaults.
type Options struct {
	// Schema is the PostgreSQL schema that holds the tables; "" means the
	// URL's search_path when that names one schema (as in
	// postgres://host/db?search_path=bots), else "captchafsm". Open
	// creates it when it does not exist. Several independent stores can
	// share one database in different schemas.
	Schema string
	// MaxConns caps the pool's connections; 0 means the URL's
	// pool_max_conns, else 16.
	MaxConns int32
	// WriteTimeout bounds Create and Apply once they have begun (they do
	// not stop when their context ends, so that the caller always learns
	// whether the write committed); 0 means one minute.
	WriteTimeout time.Duration
	// Logger receives open, migration and prune events; nil discards them.
	Logger *slog.Logger

	// dial, set by this package's tests, opens the pool's connections (to
	// count what crosses them).
	dial pgconn.DialFunc
}

// validate checks o and fills in the defaults of zero fields.
func (o *Options) validate() error {
	switch {
	case len(o.Schema) > 63:
		return fmt.Errorf("pgstore: Options.Schema %q is longer than 63 bytes", o.Schema)
	case strings.ContainsRune(o.Schema, 0) || !utf8.ValidString(o.Schema):
		return fmt.Errorf("pgstore: Options.Schema %q is not valid text", o.Schema)
	case o.MaxConns < 0:
		return fmt.Errorf("pgstore: Options.MaxConns %d is negative", o.MaxConns)
	case o.WriteTimeout < 0:
		return fmt.Errorf("pgstore: Options.WriteTimeout %v is negative", o.WriteTimeout)
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Store is a persist.Store, persist.Leaser and persist.Fleet kept in a
// PostgreSQL database that several engines (processes, hosts) may share.
// Every method is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	where  string // host:port/database, for messages (never the password)
	schema string
	opts   Options
	log    *slog.Logger
	closed atomic.Bool
}

var (
	_ persist.Store  = (*Store)(nil)
	_ persist.Leaser = (*Store)(nil)
	_ persist.Fleet  = (*Store)(nil)
)

// openError is the error of a failed Open: its text names the database
// (never the password); it matches the persist sentinel and the cause.
type openError struct {
	where string
	msg   string
	errs  []error
}

func (e *openError) Error() string   { return "pgstore: open " + e.where + ": " + e.msg }
func (e *openError) Unwrap() []error { return e.errs }

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// key=value connection string, as libpq takes) and makes sure that
// opts.Schema holds this program's tables at its schema version: it
// creates them in an empty (or absent) schema and runs the migrations an
// older schema lacks, one opener at a time.
//
// A schema written by a newer captchafsm fails with an error that wraps
// persist.ErrNewerSchema; a schema that holds tables of another program
// fails with persist.ErrNotOurs. A database that cannot be reached fails
// with the connection's error. Open never creates the database itself.
func Open(ctx context.Context, url string, opts *Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn's parse errors hide the password.
		return nil, fmt.Errorf("pgstore: open: %w", err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Schema == "" {
		o.Schema = schemaOf(cfg.ConnConfig)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	where := describe(cfg.ConnConfig)
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{o.Schema}.Sanitize()
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "captchafsm"
	}
	if o.dial != nil {
		cfg.ConnConfig.DialFunc = o.dial
	}
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &openError{where: where, msg: err.Error(), errs: []error{err}}
	}
	s := &Store{pool: pool, where: where, schema: o.Schema, opts: o, log: o.Logger}
	from, to, err := migrate(ctx, pool, o.Schema, migrations)
	if err != nil {
		pool.Close()
		var oe *openError
		if errors.As(err, &oe) {
			oe.where = where
			return nil, oe
		}
		return nil, &openError{where: where, msg: err.Error(), errs: []error{err}}
	}
	if from != to {
		o.Logger.Info("pgstore: migrated", logDB, where, logSchema, o.Schema, logFrom, from, logTo, to)
	}
	o.Logger.Info("pgstore: opened", logDB, where, logSchema, o.Schema)
	return s, nil
}

// IsURL reports whether db names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than a file: how the CLI tells its --db
// values apart.
func IsURL(db string) bool {
	l := strings.ToLower(db)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// schemaOf returns the one schema the connection's search_path names, or
// DefaultSchema.
func schemaOf(c *pgx.ConnConfig) string {
	sp := strings.TrimSpace(c.RuntimeParams["search_path"])
	if sp == "" || strings.ContainsAny(sp, ",\"$ ") {
		return DefaultSchema
	}
	return sp
}

// describe names a connection's server and database, without credentials.
func describe(c *pgx.ConnConfig) string {
	host := c.Host
	if strings.HasPrefix(host, "/") {
		host = "unix:" + host
	}
	return net.JoinHostPort(host, strconv.Itoa(int(c.Port))) + "/" + c.Database
}

// Schema returns the PostgreSQL schema that holds the store's tables.
func (s *Store) Schema() string { return s.schema }

// Close closes the pool once the calls under way have returned. Every
// method called after Close, Close included, fails with persist.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("pgstore: close: %w", persist.ErrClosed)
	}
	s.pool.Close()
	s.log.Info("pgstore: closed", logDB, s.where, logSchema, s.schema)
	return nil
}

// check reports why op cannot start: the store is closed or ctx ended.
func (s *Store) check(ctx context.Context, op string) error {
	if s.closed.Load() {
		return fmt.Errorf("pgstore: %s: %w", op, persist.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgstore: %s: %w", op, err)
	}
	return nil
}

// fail wraps the error of op so that it matches persist.ErrClosed when the
// store was closed under it and ctx's error when ctx ended.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("pgstore: %s: %w (%v)", op, persist.ErrClosed, err)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("pgstore: %s: %w (%w)", op, cerr, err)
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// writeCtx is the context of a write that has begun: it does not end with
// ctx (whose values it keeps), only after Options.WriteTimeout.
func (s *Store) writeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.opts.WriteTimeout)
}

// pgCode returns the SQLSTATE of a server error, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// SQLSTATEs the store tells apart.
const (
	codeUniqueViolation = "23505"
	codeUndefinedColumn = "42703"
	codeUndefinedTable  = "42P01"
)
