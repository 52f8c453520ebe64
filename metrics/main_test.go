package metrics_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves an engine running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}
