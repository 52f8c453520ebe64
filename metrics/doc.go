// Package metrics exports an engine's activity as Prometheus metrics, all
// named captchafsm_*: transitions, tasks per state, the API's answers and
// requests, possibly charged submits, the breaker, ban waits, solve latency
// and cost. docs/metrics.md describes each one.
//
// # Basics
//
// New returns a *Metrics, a prometheus.Collector that registers itself
// nowhere: a bot registers it in its own registry (never, implicitly, the
// global default one). Three connections feed it:
//
//   - Observe, as engine.Config.OnTransition, counts transitions, possibly
//     charged submits, solve latency and cost;
//   - InstrumentAPI wraps the engine's API to count requests, answers and
//     ban waits;
//   - Options.Store and SetBreaker are read at each scrape for the tasks
//     gauge (every task of the database) and the breaker gauge.
//
// Registry and Handler give a registry of the Metrics' own and its /metrics
// handler, for a program that has no registry yet (captchafsm serve).
//
// # Caveats
//
// captchafsm_cost_total stays 0 unless the engine fetches prices
// (engine.Config.FetchCost): batched polls carry none. Codes the catalogue
// does not hold are counted under the code "other", so that a provider's
// free text cannot grow the label's values without bound.
package metrics
