package metrics

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/captchafsm/captchafsm/engine"
	"github.com/captchafsm/captchafsm/states"
)

// Namespace prefixes every metric name.
const Namespace = "captchafsm"

// DefaultBuckets are the bounds, in seconds, of the solve-duration
// histogram: an image is solved in seconds, a reCAPTCHA in tens of seconds,
// and the default poll timeout is two minutes.
var DefaultBuckets = []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600}

// DefaultCountTimeout bounds the store's Count at each scrape.
const DefaultCountTimeout = 5 * time.Second

// Counter is what the tasks gauge needs of a store: persist.Store has it.
type Counter interface {
	// Count returns the number of tasks per state.
	Count(ctx context.Context) (map[states.State]int, error)
}

// Options configures New. The zero value is valid: no tasks gauge, a
// breaker gauge that reads 0 until SetBreaker, the default buckets.
type Options struct {
	// Store is counted at every scrape for captchafsm_tasks, so the gauge
	// holds every task of the database, not only those this process moved.
	// Nil leaves captchafsm_tasks out.
	Store Counter
	// Breaker reports whether the engine's breaker is open (for example
	// (*engine.Engine).BreakerOpen). It can be set later with SetBreaker,
	// since the engine is opened with the Metrics' hook.
	Breaker func() bool
	// Buckets are the solve-duration histogram's bounds in seconds; nil
	// means DefaultBuckets.
	Buckets []float64
	// CountTimeout bounds Store.Count at each scrape; 0 means
	// DefaultCountTimeout.
	CountTimeout time.Duration
}

// Metrics holds the engine's Prometheus metrics. It is a
// prometheus.Collector: register it in the bot's registry. Its methods are
// safe for concurrent use.
type Metrics struct {
	store        Counter
	countTimeout time.Duration

	mu      sync.RWMutex
	breaker func() bool

	transitions     *prometheus.CounterVec
	answers         *prometheus.CounterVec
	requests        *prometheus.CounterVec
	possiblyCharged prometheus.Counter
	banWaits        *prometheus.CounterVec
	solveDuration   prometheus.Histogram
	cost            prometheus.Counter

	tasksDesc   *prometheus.Desc
	breakerDesc *prometheus.Desc

	regOnce sync.Once
	reg     *prometheus.Registry
}

var _ prometheus.Collector = (*Metrics)(nil)

// New returns the metrics, registered nowhere: pass the result to the
// bot's registry's Register (or use Registry, a registry of its own).
func New(opts Options) *Metrics {
	buckets := opts.Buckets
	if len(buckets) == 0 {
		buckets = DefaultBuckets
	}
	timeout := opts.CountTimeout
	if timeout <= 0 {
		timeout = DefaultCountTimeout
	}
	return &Metrics{
		store:        opts.Store,
		countTimeout: timeout,
		breaker:      opts.Breaker,
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "transitions_total",
			Help: "Committed transitions of tasks, by source state, target state and event.",
		}, []string{"from", "to", "event"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "api_answers_total",
			Help: "Answers of the provider's API, by endpoint, code (OK for a success, other for a code the catalogue does not hold) and class.",
		}, []string{"endpoint", "code", "class"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "requests_total",
			Help: "Requests to the provider's API, by endpoint and outcome (ok, api_error, transport_error, invalid, error).",
		}, []string{"endpoint", "outcome"}),
		possiblyCharged: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "possibly_charged_total",
			Help: "Submits recorded as possibly charged: the request may have reached the provider without its answer being recorded.",
		}),
		banWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "ban_waits_total",
			Help: "Ban codes answered by the API, each making the engine wait the ban out, by code.",
		}, []string{"code"}),
		solveDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "solve_duration_seconds",
			Help:    "Time from a task's creation to Done.",
			Buckets: buckets,
		}),
		cost: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "cost_total",
			Help: "Sum of the prices the provider reported for solved tasks, in its currency (0 unless the engine fetches costs).",
		}),
		tasksDesc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "tasks"),
			"Tasks in the store, by state.", []string{"state"}, nil),
		breakerDesc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "breaker_open"),
			"1 while the engine's circuit breaker stops submits after an account error, else 0.", nil, nil),
	}
}

// SetBreaker sets the function the breaker_open gauge reads at each scrape.
func (m *Metrics) SetBreaker(f func() bool) {
	m.mu.Lock()
	m.breaker = f
	m.mu.Unlock()
}

func (m *Metrics) counters() []prometheus.Collector {
	return []prometheus.Collector{m.transitions, m.answers, m.requests, m.possiblyCharged,
		m.banWaits, m.solveDuration, m.cost}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.counters() {
		c.Describe(ch)
	}
	if m.store != nil {
		ch <- m.tasksDesc
	}
	ch <- m.breakerDesc
}

// Collect implements prometheus.Collector. The tasks gauge asks the store
// at each scrape; a store error fails that metric (and so the scrape, with
// promhttp's default error handling), never the others silently.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.counters() {
		c.Collect(ch)
	}
	if m.store != nil {
		m.collectTasks(ch)
	}
	m.mu.RLock()
	f := m.breaker
	m.mu.RUnlock()
	v := 0.0
	if f != nil && f() {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(m.breakerDesc, prometheus.GaugeValue, v)
}

func (m *Metrics) collectTasks(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), m.countTimeout)
	defer cancel()
	counts, err := m.store.Count(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(m.tasksDesc, errors.New("metrics: count tasks: "+err.Error()))
		return
	}
	// Every state is exported, zero or not, so a dashboard's series never
	// vanish.
	for _, s := range states.All() {
		ch <- prometheus.MustNewConstMetric(m.tasksDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
}

// Observe records one committed transition. Pass it as
// engine.Config.OnTransition (or call it from your own hook); it does not
// block.
func (m *Metrics) Observe(tr engine.Transition) {
	rec := tr.Record
	m.transitions.WithLabelValues(string(rec.From), string(rec.To), string(rec.Event)).Inc()
	if rec.PossiblyCharged {
		m.possiblyCharged.Inc()
	}
	if rec.To != states.Done {
		return
	}
	if !tr.Task.Created.IsZero() {
		if d := rec.At.Sub(tr.Task.Created); d >= 0 {
			m.solveDuration.Observe(d.Seconds())
		}
	}
	if c, ok := parseCost(tr.Task.Cost); ok {
		m.cost.Add(c)
	}
}

// parseCost reads a price as the provider reports it ("0.00099"). An empty
// or unreadable price is not counted.
func parseCost(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// Registry returns a registry of the Metrics' own, holding it alone,
// created on first use: what Handler serves. A bot that has a registry
// registers the Metrics there instead; adding the Go and process
// collectors here is the caller's choice.
func (m *Metrics) Registry() *prometheus.Registry {
	m.regOnce.Do(func() {
		m.reg = prometheus.NewRegistry()
		m.reg.MustRegister(m)
	})
	return m.reg
}

// Handler serves Registry in the Prometheus exposition format, for /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{})
}
