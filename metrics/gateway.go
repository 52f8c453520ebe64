package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/captchafsm/captchafsm/states"
)

// Gateway holds the gateway's per-client metrics (the `gateway` command):
// every series carries the client's name from the keys file, never its
// key. It is a prometheus.Collector, and the gateway's Observer: pass it as
// gateway.Config.Observer. Its methods are safe for concurrent use.
type Gateway struct {
	answers   *prometheus.CounterVec
	settled   *prometheus.CounterVec
	solve     *prometheus.HistogramVec
	dedup     *prometheus.CounterVec
	reports   *prometheus.CounterVec
	pingbacks *prometheus.CounterVec
}

var _ prometheus.Collector = (*Gateway)(nil)

// NewGateway returns the gateway's metrics, registered nowhere. buckets
// bound the solve-time histogram in seconds; nil means DefaultBuckets.
func NewGateway(buckets []float64) *Gateway {
	if len(buckets) == 0 {
		buckets = DefaultBuckets
	}
	return &Gateway{
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "gateway", Name: "answers_total",
			Help: "Answers the gateway gave its clients, by client, request (in.php or res.php's action) and code (OK or the code answered).",
		}, []string{"client", "request", "code"}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "gateway", Name: "tasks_settled_total",
			Help: "Clients' tasks reaching Done, Failed or NeedsAccountFix, by client and state.",
		}, []string{"client", "state"}),
		solve: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "gateway", Name: "solve_duration_seconds",
			Help:    "Time from a client's in.php to its task's Done, by client.",
			Buckets: buckets,
		}, []string{"client"}),
		dedup: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "gateway", Name: "retries_deduplicated_total",
			Help: "in.php retries answered with the id of the task their lost first try created, by client.",
		}, []string{"client"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "gateway", Name: "reports_total",
			Help: "reportgood and reportbad requests, by client, report (good, bad) and code (OK when the provider recorded it).",
		}, []string{"client", "report", "code"}),
		pingbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "gateway", Name: "pingbacks_total",
			Help: "Pingbacks sent to clients' URLs, by client and result (delivered, failed).",
		}, []string{"client", "result"}),
	}
}

func (g *Gateway) collectors() []prometheus.Collector {
	return []prometheus.Collector{g.answers, g.settled, g.solve, g.dedup, g.reports, g.pingbacks}
}

// Describe implements prometheus.Collector.
func (g *Gateway) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range g.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (g *Gateway) Collect(ch chan<- prometheus.Metric) {
	for _, c := range g.collectors() {
		c.Collect(ch)
	}
}

// Answered counts one answer to a client.
func (g *Gateway) Answered(client, request, code string) {
	g.answers.WithLabelValues(client, request, code).Inc()
}

// Settled counts a client's task settling; a Done one's time is observed.
func (g *Gateway) Settled(client string, state states.State, d time.Duration) {
	g.settled.WithLabelValues(client, string(state)).Inc()
	if state == states.Done && d >= 0 {
		g.solve.WithLabelValues(client).Observe(d.Seconds())
	}
}

// Deduplicated counts an in.php retry answered with an earlier id.
func (g *Gateway) Deduplicated(client string) { g.dedup.WithLabelValues(client).Inc() }

// Reported counts a report and the provider's code.
func (g *Gateway) Reported(client string, good bool, code string) {
	report := "bad"
	if good {
		report = "good"
	}
	g.reports.WithLabelValues(client, report, code).Inc()
}

// Pingback counts a pingback delivered or failed.
func (g *Gateway) Pingback(client string, ok bool) {
	result := "failed"
	if ok {
		result = "delivered"
	}
	g.pingbacks.WithLabelValues(client, result).Inc()
}
