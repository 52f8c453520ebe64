package persisttest_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/captchafsm/captchafsm/persist"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/persist/persisttest"
)

// A store's package runs the suite from one test function.
func ExampleRun() {
	testConformance := func(t *testing.T) {
		persisttest.Run(t, func(t *testing.T) persist.Store {
			s, err := boltstore.Open(filepath.Join(t.TempDir(), "test.db"), &boltstore.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil && !errors.Is(err, persist.ErrClosed) {
					t.Error(err)
				}
			})
			return s
		})
	}
	_ = testConformance // in a _test.go file: func TestConformance(t *testing.T) { ... }
}
