package gateway_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/internal/gateway"
	"github.com/captchafsm/captchafsm/persist/boltstore"
	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

// A gateway in front of an engine whose provider is the in-process
// simulator: a bot submits with its local key, gets a numeric id, and polls
// it; the answer comes from the engine's state.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gateway-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := boltstore.Open(filepath.Join(dir, "gw.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	sim := providersim.New(providersim.Config{Seed: 1, Speed: 1000, Mix: providersim.NoErrors()})
	upstream, err := provider.New(provider.Config{BaseURL: providersim.InProcessURL,
		Key: "0123456789abcdef0123456789abcdef", HTTPClient: sim.Client()}) // the provider's key: never a bot's
	if err != nil {
		log.Fatal(err)
	}
	gw, err := gateway.Open(ctx, gateway.Config{
		Engine: engine.Config{Store: store, API: upstream, Policy: engine.Policy{
			FirstPollDelay: 10 * time.Millisecond, FirstPollDelayToken: 10 * time.Millisecond, PollInterval: 10 * time.Millisecond}},
		Clients: []gateway.Client{{Name: "scraper", Key: "a11ce000a11ce000a11ce000a11ce000"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gw.Close()

	bot := func(endpoint string, q url.Values) string {
		q.Set("key", "a11ce000a11ce000a11ce000a11ce000")
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, httptest.NewRequest("GET", "/"+endpoint+"?"+q.Encode(), nil))
		return rec.Body.String()
	}
	answer := bot("in.php", url.Values{"method": {"hcaptcha"}, "sitekey": {"k"}, "pageurl": {"https://example.com"}})
	id := strings.TrimPrefix(answer, "OK|")
	fmt.Println("numeric id:", strings.Trim(id, "0123456789") == "")
	fmt.Println(bot("res.php", url.Values{"action": {"get"}, "id": {id}}))

	// The engine solves it; a bot polls every few seconds, for free.
	if _, err := gw.Engine().Wait(ctx, "gw:scraper:"+id); err != nil {
		log.Fatal(err)
	}
	answer = bot("res.php", url.Values{"action": {"get"}, "id": {id}})
	for answer == "CAPCHA_NOT_READY" { // the gateway hears of the move a moment after Wait does
		answer = bot("res.php", url.Values{"action": {"get"}, "id": {id}})
	}
	fmt.Println(answer[:6]) // hcaptcha tokens start P1_
	fmt.Println(bot("res.php", url.Values{"action": {"get"}, "id": {"12345"}}))
	// Output:
	// numeric id: true
	// CAPCHA_NOT_READY
	// OK|P1_
	// ERROR_WRONG_CAPTCHA_ID
}
