package cli

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/spf13/cobra"

	"github.com/captchafsm/captchafsm/provider/providersim"
)

func (a *app) simulateCmd() *cobra.Command {
	var (
		addr, mixFile string
		seed          int64
		speed         float64
		balance       float64
	)
	c := &cobra.Command{
		Use:   "simulate [--addr 127.0.0.1:0] [--mix FILE] [--seed N] [--speed F]",
		Short: "Run the provider simulator alone, for your own bot",
		Long: `Serve a simulated CaptchaAI API (in.php and res.php) on a loopback address until
interrupted. Its URL is the first line on stdout; point a client at it with
--api-url or CAPTCHAFSM_API_URL. Any well-formed key (32 hex characters) is
accepted. It answers with the error guide's mix (or --mix FILE), solves in the
provider's times divided by --speed, charges a balance, and enforces the
provider's rate rules (more than 60 in.php requests in 3 s: MAX_USER_TURN).
The same --seed and the same requests give the same answers.

The mix file is JSON: {"submit": {"CODE": probability, ...}, "poll": {...}};
a section left out keeps the default, an empty one ({}) means no errors.`,
		Example: `  captchafsm simulate --addr 127.0.0.1:8099 --speed 10 &
  CAPTCHAFSM_API_URL=http://127.0.0.1:8099 CAPTCHAFSM_API_KEY=0123456789abcdef0123456789abcdef \
      captchafsm solve --method hcaptcha --param sitekey=x --param pageurl=https://example.com
  echo '{"submit":{"ERROR_NO_SLOT_AVAILABLE":0.2},"poll":{}}' > busy.json
  captchafsm simulate --mix busy.json --seed 7`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := providersim.Config{Seed: seed, Speed: speed, Balance: balance}
			if math.IsNaN(speed) || speed <= 0 || speed > 10000 {
				return usageErr("--speed %v: want a number above 0 and at most 10000", speed)
			}
			if balance < 0 || math.IsNaN(balance) {
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
			srv, err := providersim.Start(cfg, addr)
			if err != nil {
				return usageErr("--addr %s: %v", addr, err)
			}
			defer srv.Close()
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if a.json {
				_ = json.NewEncoder(out).Encode(map[string]string{"url": srv.URL})
			} else {
				fmt.Fprintln(out, srv.URL)
			}
			fmt.Fprintf(errw, "captchafsm: simulator listening on %s (seed %d, speed %g); any 32-hex key is accepted\n", srv.URL, seed, speed)
			fmt.Fprintf(errw, "captchafsm: export %s=%s; stop with Ctrl-C\n", EnvAPIURL, srv.URL)
			<-cmd.Context().Done()
			srv.Close()
			l := srv.Sim.Ledger()
			fmt.Fprintf(errw, "captchafsm: simulator stopped: %d in.php and %d res.php requests, %d tasks charged (%.5f), balance %.5f\n",
				l.Requests[providersim.KindSubmit], l.Requests[providersim.KindPoll]+l.Requests[providersim.KindGet2]+
					l.Requests[providersim.KindBalance]+l.Requests[providersim.KindReport]+l.Requests[providersim.KindOther],
				l.Charged(), l.Cost, l.Balance)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:0", "loopback address to listen on (port 0: any free port)")
	f.StringVar(&mixFile, "mix", "", "JSON file of the error mix (default: the error guide's)")
	f.Int64Var(&seed, "seed", 1, "seed of every random draw")
	f.Float64Var(&speed, "speed", 1, "divide solve times and bans by this factor")
	f.Float64Var(&balance, "balance", 100, "the account's starting balance")
	return c
}
