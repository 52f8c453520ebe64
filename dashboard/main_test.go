package dashboard_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves an engine, a server or a
// browser connection running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Keep-alive connections of http.DefaultClient end when the
		// server's side closes; they may still be winding down.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}
