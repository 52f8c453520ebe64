package pgstoretest_test

import (
	"testing"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/persisttest"
	"github.com/captchafsm/captchafsm/persist/pgstore/pgstoretest"
)

// A store's tests open one store per test, each in a fresh schema; without
// CAPTCHAFSM_TEST_PG the test is skipped with a message naming
// .ci/postgres.sh.
func ExampleOpen() {
	testConformance := func(t *testing.T) {
		persisttest.Run(t, func(t *testing.T) persist.Store { return pgstoretest.Open(t, nil) })
	}
	_ = testConformance // in a _test.go file: func TestConformance(t *testing.T) { ... }
}
