package providersim_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestStart(t *testing.T) {
	for _, addr := range []string{"", "127.0.0.1:0", "localhost:0"} {
		t.Run("listen "+addr, func(t *testing.T) {
			s, err := providersim.Start(providersim.Config{Mix: providersim.NoErrors()}, addr)
			require.NoError(t, err)
			defer s.Close()
			u, err := url.Parse(s.URL)
			require.NoError(t, err)
			assert.Equal(t, "http", u.Scheme)
			assert.NotEqual(t, "0", u.Port())

			c := s.Client()
			status, body := get(t, c, s.URL+"/in.php?"+form("method", "hcaptcha", "sitekey", "k", "pageurl", "https://e.com").Encode())
			assert.Equal(t, http.StatusOK, status)
			id, ok := strings.CutPrefix(body, "OK|")
			require.True(t, ok, body)
			_, body = get(t, c, s.URL+"/res.php?"+form("action", "get", "id", id, "json", "1").Encode())
			assert.Equal(t, jsonAnswer{Status: 0, Request: "CAPCHA_NOT_READY"}, decode(t, body))
			assert.Equal(t, 1, s.Sim.Ledger().Charged())
		})
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.168.1.10:8080", "8.8.8.8:80", "example.com:80", "localhost", "127.0.0.1"} {
		t.Run(addr, func(t *testing.T) {
			s, err := providersim.Start(providersim.Config{}, addr)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.True(t, strings.HasPrefix(err.Error(), "providersim: address "), err.Error())
			assert.Contains(t, err.Error(), addr)
		})
	}
	s, err := providersim.Start(providersim.Config{}, "0.0.0.0:0")
	require.Error(t, err)
	assert.Nil(t, s)
	assert.Contains(t, err.Error(), "not a loopback address")
}

func TestServerFaults(t *testing.T) {
	t.Run("drop", func(t *testing.T) {
		s, err := providersim.Start(providersim.Config{Mix: providersim.NoErrors(), Faults: providersim.Faults{Submit: providersim.FaultRates{Drop: 1}}}, "")
		require.NoError(t, err)
		defer s.Close()
		resp, err := s.Client().PostForm(s.URL+"/in.php", form("method", "hcaptcha", "sitekey", "k", "pageurl", "https://e.com"))
		if err == nil {
			_ = resp.Body.Close()
		}
		require.Error(t, err, "the connection is closed without an answer")
		assert.Equal(t, 1, s.Sim.Ledger().Charged(), "but the submit was charged")
	})
	t.Run("html502", func(t *testing.T) {
		s, err := providersim.Start(providersim.Config{Faults: providersim.Faults{Balance: providersim.FaultRates{HTML502: 1}}}, "")
		require.NoError(t, err)
		defer s.Close()
		status, body := get(t, s.Client(), s.URL+"/res.php?"+form("action", "getbalance").Encode())
		assert.Equal(t, http.StatusBadGateway, status)
		assert.Contains(t, body, "502 Bad Gateway")
	})
	t.Run("slow honours the client's deadline", func(t *testing.T) {
		s, err := providersim.Start(providersim.Config{Faults: providersim.Faults{Balance: providersim.FaultRates{Slow: 1, SlowDelay: time.Hour}}}, "")
		require.NoError(t, err)
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/res.php?"+form("action", "getbalance").Encode(), nil)
		require.NoError(t, err)
		_, err = s.Client().Do(req)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
	t.Run("close ends held answers", func(t *testing.T) {
		s, err := providersim.Start(providersim.Config{Faults: providersim.Faults{Balance: providersim.FaultRates{Slow: 1, SlowDelay: time.Hour}}}, "")
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() {
			resp, err := s.Client().Get(s.URL + "/res.php?" + form("action", "getbalance").Encode())
			if err == nil {
				_ = resp.Body.Close()
			}
			errc <- err
		}()
		for s.Sim.Ledger().Requests[providersim.KindBalance] == 0 {
			runtime.Gosched()
		}
		s.Close()
		assert.Error(t, <-errc)
		s.Close() // twice is fine
	})
}
