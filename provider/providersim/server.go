package providersim

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is a simulator listening on a loopback address, shaped like
// httptest.Server: in.php and res.php live under URL.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:PORT".
	URL string
	// Sim is the simulator behind the listener (its ledger, balance, mix).
	Sim *Sim
	// Listener is the loopback listener.
	Listener net.Listener

	srv       *http.Server
	transport *http.Transport
	stop      chan struct{}
	served    chan struct{}
	mu        sync.Mutex // guards closed and the first Add of handlers
	closed    bool
	handlers  sync.WaitGroup
	closeOnce sync.Once
}

// Start starts a simulator configured by cfg on addr, which must be a
// loopback address ("" means 127.0.0.1:0, a free port): the simulator
// accepts any key and must not be reachable from the network.
func Start(cfg Config, addr string) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("providersim: listen on %s: %w", addr, err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		_ = ln.Close()
		return nil, fmt.Errorf("providersim: address %q resolved to %s, not a loopback address", addr, ln.Addr())
	}
	s := &Server{
		URL:       "http://" + ln.Addr().String(),
		Sim:       New(cfg),
		Listener:  ln,
		transport: &http.Transport{MaxIdleConnsPerHost: 64},
		stop:      make(chan struct{}),
		served:    make(chan struct{}),
	}
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		panic(http.ErrAbortHandler)
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()
	s.Sim.serveHTTP(w, r, s.stop)
}

// checkLoopback refuses an address whose host is not a loopback IP or
// localhost; "" is fine (the default).
func checkLoopback(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("providersim: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("providersim: address %q is not a loopback address: the simulator listens on 127.0.0.1, ::1 or localhost only", addr)
}

// Client returns an HTTP client for the server (its connections are closed
// by Close).
func (s *Server) Client() *http.Client { return &http.Client{Transport: s.transport} }

// Close stops the server: it closes the listener and every connection,
// ends held (Slow) answers, and waits for the handlers to return.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		_ = s.srv.Close()
		<-s.served
		s.handlers.Wait()
		s.Sim.Close()
		s.transport.CloseIdleConnections()
	})
}
