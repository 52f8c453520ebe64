package pgstoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/pgstore"
)

// EnvURL names the environment variable that holds the URL of the
// PostgreSQL database tests may use.
const EnvURL = "CAPTCHAFSM_TEST_PG"

// URL returns the test database's URL, or skips t when EnvURL is unset.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Skip(EnvURL + " is not set: this test needs a PostgreSQL server; " +
			"`source .ci/postgres.sh` starts a throwaway one on loopback and sets it")
	}
	return u
}

// Schema returns the name of a new schema for t alone, which is dropped
// (with everything in it) when t ends. It skips t when EnvURL is unset.
func Schema(t testing.TB) string {
	t.Helper()
	u := URL(t)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := pgstore.DropSchema(context.Background(), u, name); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	return name
}

// WithSchema returns the test database's URL with search_path set to
// schema, for a process (such as the captchafsm CLI) that opens the store
// from a URL alone.
func WithSchema(t testing.TB, schema string) string {
	t.Helper()
	u := URL(t)
	if !strings.Contains(u, "://") {
		return u + " search_path=" + schema
	}
	p, err := url.Parse(u)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	q := p.Query()
	q.Set("search_path", schema)
	p.RawQuery = q.Encode()
	return p.String()
}

// Open opens a store for t in a schema of its own (unless opts names one),
// and closes it and drops the schema when t ends. It skips t when EnvURL
// is unset.
func Open(t testing.TB, opts *pgstore.Options) *pgstore.Store {
	t.Helper()
	var o pgstore.Options
	if opts != nil {
		o = *opts
	}
	if o.Schema == "" {
		o.Schema = Schema(t)
	}
	s, err := pgstore.Open(context.Background(), URL(t), &o)
	if err != nil {
		t.Fatalf("open pgstore: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, persist.ErrClosed) {
			t.Errorf("close pgstore: %v", err)
		}
	})
	return s
}
