package providersim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// ErrConnectionDropped is the error of a request hit by the Drop fault on
// the in-process transport: the simulator processed the request (a submit
// was charged) and the answer was lost.
var ErrConnectionDropped = errors.New("providersim: connection dropped (injected fault)")

// InProcessURL is a base URL for clients that use RoundTripper: the
// in-process transport ignores the host, so any URL works; this one says
// what it is and never resolves.
const InProcessURL = "http://providersim.invalid"

// ServeHTTP answers in.php and res.php (under any path prefix); other paths
// get 404. A Drop fault aborts the response with http.ErrAbortHandler, which
// an http.Server turns into a closed connection (outside a server, it is a
// panic). A Slow fault holds the answer until SlowDelay passes or the
// request's context ends.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serveHTTP(w, r, nil)
}

func (s *Sim) serveHTTP(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
	rep := s.handle(r)
	switch rep.fault {
	case FaultDrop:
		panic(http.ErrAbortHandler)
	case FaultSlow:
		switch err := wait(r.Context(), rep.delay, stop); {
		case errors.Is(err, http.ErrServerClosed):
			panic(http.ErrAbortHandler) // the server is closing: no answer
		case err != nil:
			return // the client is gone
		}
	}
	h := w.Header()
	for k, v := range rep.header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(len(rep.body)))
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}

// wait sleeps d unless ctx ends or stop closes first.
func wait(ctx context.Context, d time.Duration, stop <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return http.ErrServerClosed
	}
}

// RoundTripper returns a transport that calls the simulator directly, with
// no sockets, so clients under test run inside testing/synctest bubbles.
// Faults behave as on the wire: HTTP500 and HTML502 are answers; Drop
// returns ErrConnectionDropped after the request was processed (a submit is
// charged); Slow holds the answer for SlowDelay, honouring the request's
// context.
func (s *Sim) RoundTripper() http.RoundTripper { return transport{s} }

// Client returns an *http.Client that uses RoundTripper. Pair it with
// InProcessURL (or any URL).
func (s *Sim) Client() *http.Client { return &http.Client{Transport: s.RoundTripper()} }

type transport struct{ s *Sim }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body := req.Body
	if body == nil {
		body = http.NoBody
	}
	defer func() { _ = body.Close() }()
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The server's view of the request: a copy, so the caller's is never
	// changed.
	sreq := req.Clone(ctx)
	sreq.Body = body
	sreq.RequestURI = req.URL.RequestURI()
	if sreq.Host == "" {
		sreq.Host = req.URL.Host
	}
	rep := t.s.handle(sreq)
	switch rep.fault {
	case FaultDrop:
		return nil, ErrConnectionDropped
	case FaultSlow:
		if err := wait(ctx, rep.delay, nil); err != nil {
			return nil, err
		}
	}
	h := rep.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Length", strconv.Itoa(len(rep.body)))
	return &http.Response{
		Status:        strconv.Itoa(rep.status) + " " + http.StatusText(rep.status),
		StatusCode:    rep.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(rep.body)),
		ContentLength: int64(len(rep.body)),
		Request:       req,
	}, nil
}
