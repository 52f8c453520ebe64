package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/providersim"
)

func (a *app) simulateCmd() *cobra.Command {
	var (
		addr, mixFile, keysFile string
		seed                    int64
		speed                   float64
		balance                 float64
		pollTiming              bool
	)
	c := &cobra.Command{
		Use:   "simulate [--addr 127.0.0.1:0] [--mix FILE] [--seed N] [--speed F] [--keys FILE]",
		Short: "Run the provider simulator alone, for your own bot",
		Long: `Serve a simulated CaptchaAI API (in.php and res.php) on a loopback address until
interrupted. Its URL is the first line on stdout; point a client at it with
--api-url or CAPTCHAFSM_API_URL. It speaks the protocol as the provider does
(docs/protocol.md): query, form, multipart and JSON requests, json=1 and
header_acao=1, every res.php action including reports and pingbacks.

Any well-formed key (32 hex characters) is accepted, unless --keys FILE names
the keys that exist (one a line, "KEY" or "NAME KEY"; # starts a comment):
another key is ERROR_KEY_DOES_NOT_EXIST, and 20 wrong keys in a minute from
one address earn it IP_BANNED for 5 minutes.

It answers with the error guide's mix (or --mix FILE), solves in the
provider's times divided by --speed, charges a balance (--balance 0 is an
empty account), and enforces the provider's rate rules (more than 60 in.php
requests in 3 s: MAX_USER_TURN; the res.php budget: ERROR: 1005) and its poll
timing (first poll at least 5 s after the submit, 10 s for reCAPTCHA-class
methods, then every 5 s; sooner is ERROR_TOO_MUCH_REQUESTS). --speed divides
the timing minimums and bans too; --poll-timing=false turns the timing off.
The same --seed and the same requests give the same answers.

The mix file is JSON: {"submit": {"CODE": probability, ...}, "poll": {...}};
a section left out keeps the default, an empty one ({}) means no errors.`,
		Example: `  captchafsm simulate --addr 127.0.0.1:8099 --speed 10 &
  CAPTCHAFSM_API_URL=http://127.0.0.1:8099 CAPTCHAFSM_API_KEY=0123456789abcdef0123456789abcdef \
      captchafsm solve --method hcaptcha --param sitekey=x --param pageurl=https://example.com
  echo '{"submit":{"ERROR_NO_SLOT_AVAILABLE":0.2},"poll":{}}' > busy.json
  captchafsm simulate --mix busy.json --seed 7
  captchafsm simulate --balance 0          # an empty account: ERROR_ZERO_BALANCE
  captchafsm simulate --keys keys.txt      # only these keys exist`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := providersim.Config{Seed: seed, Speed: speed, PollTiming: pollTiming}
			if math.IsNaN(speed) || speed <= 0 || speed > 10000 {
				return usageErr("--speed %v: want a number above 0 and at most 10000", speed)
			}
			if balance < 0 || math.IsNaN(balance) || math.IsInf(balance, 0) {
				return usageErr("--balance %v: must not be negative", balance)
			}
			if mixFile != "" {
				b, err := os.ReadFile(mixFile)
				if err != nil {
					return usageErr("--mix %s: %s", mixFile, fsProblem(err))
				}
				m, err := providersim.ParseMix(b)
				if err != nil {
					return usageErr("--mix %s: %v", mixFile, err)
				}
				cfg.Mix = m
			}
			if keysFile != "" {
				b, err := os.ReadFile(keysFile)
				if err != nil {
					return usageErr("--keys %s: %s", keysFile, fsProblem(err))
				}
				keys, err := parseKeys(b)
				if err != nil {
					return usageErr("--keys %s: %v", keysFile, err)
				}
				cfg.Keys = keys
			}
			srv, err := providersim.Start(cfg, addr)
			if err != nil {
				return usageErr("--addr %s: %v", addr, err)
			}
			defer srv.Close()
			// Config.Balance's zero means the default; the flag's zero means
			// an empty account.
			srv.Sim.SetBalance(balance)
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if a.json {
				_ = json.NewEncoder(out).Encode(map[string]string{"url": srv.URL})
			} else {
				fmt.Fprintln(out, srv.URL)
			}
			keysSay := "any 32-hex key is accepted"
			if len(cfg.Keys) > 0 {
				keysSay = fmt.Sprintf("%d keys accepted", len(cfg.Keys))
			}
			timingSay := "poll timing enforced"
			if !pollTiming {
				timingSay = "poll timing off"
			}
			fmt.Fprintf(errw, "captchafsm: simulator listening on %s (seed %d, speed %g, balance %g, %s); %s\n",
				srv.URL, seed, speed, balance, timingSay, keysSay)
			fmt.Fprintf(errw, "captchafsm: export %s=%s; stop with Ctrl-C\n", EnvAPIURL, srv.URL)
			<-cmd.Context().Done()
			srv.Close()
			l := srv.Sim.Ledger()
			fmt.Fprintf(errw, "captchafsm: simulator stopped: %d in.php and %d res.php requests, %d tasks charged (%.5f), balance %.5f, %d polls too soon, %d pingbacks sent\n",
				l.Requests[providersim.KindSubmit], l.Requests[providersim.KindPoll]+l.Requests[providersim.KindGet2]+
					l.Requests[providersim.KindBalance]+l.Requests[providersim.KindReport]+l.Requests[providersim.KindPingback]+
					l.Requests[providersim.KindOther],
				l.Charged(), l.Cost, l.Balance, l.TooSoon, l.Pingbacks)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:0", "loopback address to listen on (port 0: any free port)")
	f.StringVar(&mixFile, "mix", "", "JSON file of the error mix (default: the error guide's)")
	f.Int64Var(&seed, "seed", 1, "seed of every random draw")
	f.Float64Var(&speed, "speed", 1, "divide solve times, bans and poll timing minimums by this factor")
	f.Float64Var(&balance, "balance", 100, "the account's starting balance (0: an empty account)")
	f.StringVar(&keysFile, "keys", "", `file of the keys that exist, one a line ("KEY" or "NAME KEY"); default: any well-formed key`)
	f.BoolVar(&pollTiming, "poll-timing", true, "answer polls sooner than the provider's documented minimums with ERROR_TOO_MUCH_REQUESTS")
	return c
}

// keyLine is one line of a keys file: the key, and the name before it
// ("" when the line holds the key alone).
type keyLine struct {
	line int
	name string
	key  string
}

// parseKeys reads a keys file: one key a line, alone or after a name
// ("NAME KEY", as the gateway's keys file has them); blank lines and lines
// starting with # are skipped. Errors name the line, never the key.
func parseKeys(b []byte) ([]string, error) {
	lines, err := parseKeyLines(b)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(lines))
	for i, l := range lines {
		keys[i] = l.key
	}
	return keys, nil
}

// parseKeyLines is parseKeys with each key's name and line: the parser of
// both `simulate --keys` and `gateway --keys`. Keys are lower-cased.
func parseKeyLines(b []byte) ([]keyLine, error) {
	var out []keyLine
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) > 2 {
			return nil, fmt.Errorf("line %d: want KEY or NAME KEY", n)
		}
		k := strings.ToLower(f[len(f)-1])
		if provider.ValidateKey(k) != nil {
			return nil, fmt.Errorf("line %d: the key is not 32 hex characters", n)
		}
		if seen[k] {
			return nil, fmt.Errorf("line %d: the key is given twice", n)
		}
		seen[k] = true
		kl := keyLine{line: n, key: k}
		if len(f) == 2 {
			kl.name = f[0]
		}
		out = append(out, kl)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no key in the file")
	}
	return out, nil
}
