package providersim

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/captchafsm/captchafsm/provider"
	"github.com/captchafsm/captchafsm/provider/protocol"
)

// firstID is the provider id of the first task; ids increase by one.
const firstID int64 = 70_000_000_001

// maxMethods bounds the distinct method names the simulator remembers.
const maxMethods = 1024

// Sim is the simulated provider: an http.Handler serving in.php and res.php
// (under any path prefix). Use RoundTripper for an in-process client (works
// inside testing/synctest bubbles) or Start for a loopback server. A Sim is
// safe for concurrent use.
type Sim struct {
	seed     int64
	now      func() time.Time
	speed    float64
	costs    map[string]float64
	times    map[string]Dist
	faults   Faults
	keys     [][]byte // the valid keys, lower case; none means any well-formed key
	rules    bool
	timing   bool
	tokenTTL int64
	proto    *protocol.Handler

	pingClient *http.Client
	pingCtx    context.Context
	pingCancel context.CancelFunc
	pingWG     sync.WaitGroup

	mu        sync.Mutex
	faultRNG  *rand.Rand
	submitRNG *rand.Rand
	taskRNG   *rand.Rand
	submitMix []weighted
	pollMix   []weighted

	balance int64 // nano-units, so repeated charges stay exact
	charged int64
	tasks   []task // tasks[i] has id firstID+i
	methods []methodInfo
	byName  map[string]uint16
	codes   []string // outcome codes; codes[0] is "" (a token)
	codeIdx map[string]uint16
	prints  map[Fingerprint]Submits

	requests map[Kind]int
	answers  map[string]int
	bans     map[string]int
	faultN   map[FaultKey]int

	submitWin  window
	noSlotWin  window
	zeroBalWin window
	hour       hourly
	submitBan  ban
	resultBan  ban
	badKeys    map[string]*window // wrong-key answers per IP address
	ipBans     map[string]ban

	tooSoon    int // polls refused by the timing rules
	pingbacks  map[string]bool
	pingTimers map[int64]*time.Timer
	pingSent   int
	pingFailed int
	closed     bool
}

// task is one accepted task, kept small: 10,000 in flight cost well under a
// megabyte. Its token is derived from the seed and id when asked for.
type task struct {
	accepted int64
	ready    int64
	fp       Fingerprint
	cost     int64
	polls    uint32
	lastPoll int64 // the last poll the timing rules let through
	method   uint16
	outcome  uint16
	report   uint8
	flags    uint8
}

// flagGeetestV4 marks a GeeTest v4 task sent as CaptchaAI spells it
// (method=geetest&version=4): its answer has v4's fields.
const flagGeetestV4 uint8 = 1

const (
	reportNone uint8 = iota
	reportGood
	reportBad
)

type methodInfo struct {
	name string
	cost int64
	dist Dist
}

type weighted struct {
	code string
	cum  float64
}

// New returns a simulator configured by cfg. It panics if cfg is invalid
// (see Config.Validate), as httptest.NewServer panics when it cannot start.
func New(cfg Config) *Sim {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	s := &Sim{
		seed:     cfg.Seed,
		now:      cfg.Now,
		speed:    cfg.Speed,
		costs:    cfg.Costs,
		times:    cfg.SolveTime,
		faults:   cfg.Faults,
		rules:    !cfg.NoRateRules,
		timing:   cfg.PollTiming,
		byName:   map[string]uint16{},
		codes:    []string{""},
		codeIdx:  map[string]uint16{"": 0},
		prints:   map[Fingerprint]Submits{},
		requests: map[Kind]int{},
		answers:  map[string]int{},
		bans:     map[string]int{},
		faultN:   map[FaultKey]int{},

		submitWin:  newWindow(provider.SubmitBurst, provider.SubmitBurstWindow),
		noSlotWin:  newWindow(provider.FloodAnswers, provider.FloodWindow),
		zeroBalWin: newWindow(provider.FloodAnswers, provider.FloodWindow),
		badKeys:    map[string]*window{},
		ipBans:     map[string]ban{},
		pingbacks:  map[string]bool{},
		pingTimers: map[int64]*time.Timer{},
		pingClient: cfg.PingbackClient,
	}
	for _, k := range append([]string{cfg.Key}, cfg.Keys...) {
		if k != "" {
			s.keys = append(s.keys, []byte(strings.ToLower(k)))
		}
	}
	if s.pingClient == nil {
		s.pingClient = defaultPingbackClient()
	}
	s.pingCtx, s.pingCancel = context.WithCancel(context.Background())
	s.proto = protocol.NewHandler(backend{s}, nil)
	if s.now == nil {
		s.now = time.Now
	}
	if s.speed == 0 {
		s.speed = 1
	}
	s.tokenTTL = int64(s.scale(cfg.TokenTTL))
	bal := cfg.Balance
	if bal == 0 {
		bal = 100
	}
	s.balance = toNanos(bal)
	// Independent streams: the error mix does not shift when faults are
	// configured, and tasks draw the same solve times whatever the faults.
	u := uint64(cfg.Seed)
	s.faultRNG = rand.New(rand.NewPCG(u, 0x6661756c74))
	s.submitRNG = rand.New(rand.NewPCG(u, 0x7375626d6974))
	s.taskRNG = rand.New(rand.NewPCG(u, 0x7461736b))
	mix := cfg.Mix
	if mix.isZero() {
		mix = DefaultMix()
	}
	s.setMix(mix)
	return s
}

// SetMix replaces the error mix for the requests and tasks to come.
func (s *Sim) SetMix(m Mix) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if m.isZero() {
		m = DefaultMix()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setMix(m)
	return nil
}

func (s *Sim) setMix(m Mix) {
	s.submitMix = cumulative(m.Submit)
	s.pollMix = cumulative(m.Poll)
}

func cumulative(sec map[string]float64) []weighted {
	var out []weighted
	cum := 0.0
	for _, code := range sortedKeys(sec) { // sorted: draws must not depend on map order
		if sec[code] == 0 {
			continue
		}
		cum += sec[code]
		out = append(out, weighted{code: code, cum: cum})
	}
	return out
}

func draw(table []weighted, r float64) string {
	i := sort.Search(len(table), func(i int) bool { return r < table[i].cum })
	if i == len(table) {
		return ""
	}
	return table[i].code
}

// SetBalance sets the account's balance (a top-up, or 0 for an empty
// account).
func (s *Sim) SetBalance(b float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.balance = toNanos(b)
}

// Balance returns the account's balance.
func (s *Sim) Balance() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fromNanos(s.balance)
}

// Ledger returns a copy of everything the simulator counted.
func (s *Sim) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := Ledger{
		Requests:        make(map[Kind]int, len(s.requests)),
		Answers:         make(map[string]int, len(s.answers)),
		Tasks:           make([]TaskRecord, len(s.tasks)),
		Cost:            fromNanos(s.charged),
		Balance:         fromNanos(s.balance),
		Bans:            make(map[string]int, len(s.bans)),
		Faults:          make(map[FaultKey]int, len(s.faultN)),
		Polls:           map[int64]int{},
		Fingerprints:    make(map[Fingerprint]Submits, len(s.prints)),
		TooSoon:         s.tooSoon,
		Pingbacks:       s.pingSent,
		PingbacksFailed: s.pingFailed,
	}
	for k, v := range s.requests {
		l.Requests[k] = v
	}
	for k, v := range s.answers {
		l.Answers[k] = v
	}
	for k, v := range s.bans {
		l.Bans[k] = v
	}
	for k, v := range s.faultN {
		l.Faults[k] = v
	}
	for k, v := range s.prints {
		l.Fingerprints[k] = v
	}
	for i := range s.tasks {
		t := &s.tasks[i]
		id := firstID + int64(i)
		rec := TaskRecord{
			ID:          id,
			Method:      s.methods[t.method].name,
			Fingerprint: t.fp,
			Cost:        fromNanos(t.cost),
			Accepted:    time.Unix(0, t.accepted),
			Ready:       time.Unix(0, t.ready),
			Outcome:     s.codes[t.outcome],
			Polls:       int(t.polls),
		}
		switch t.report {
		case reportGood:
			rec.Report = "good"
		case reportBad:
			rec.Report = "bad"
		}
		l.Tasks[i] = rec
		if t.polls > 0 {
			l.Polls[id] = int(t.polls)
		}
	}
	return l
}

// method returns the index of name's info, adding it on first use; false
// when the table is full.
func (s *Sim) method(name string) (uint16, bool) {
	if i, ok := s.byName[name]; ok {
		return i, true
	}
	if len(s.methods) >= maxMethods {
		return 0, false
	}
	cost, ok := s.costs[name]
	if !ok {
		cost = DefaultCost(name)
	}
	dist, ok := s.times[name]
	if !ok {
		dist = DefaultSolveTime(name)
	}
	i := uint16(len(s.methods))
	s.methods = append(s.methods, methodInfo{name: name, cost: toNanos(cost), dist: dist})
	s.byName[name] = i
	return i, true
}

func (s *Sim) outcomeIndex(code string) uint16 {
	if i, ok := s.codeIdx[code]; ok {
		return i
	}
	i := uint16(len(s.codes))
	s.codes = append(s.codes, code)
	s.codeIdx[code] = i
	return i
}

// scale divides a solve time or ban length by Speed.
func (s *Sim) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.speed)
}

func (s *Sim) startBan(b *ban, now int64, code string, d time.Duration) {
	*b = ban{until: now + int64(s.scale(d)), code: code}
	s.bans[code]++
}

func toNanos(v float64) int64   { return int64(math.Round(v * 1e9)) }
func fromNanos(n int64) float64 { return float64(n) / 1e9 }
func formatMoney(n int64) string {
	return strconv.FormatFloat(fromNanos(n), 'f', -1, 64)
}
