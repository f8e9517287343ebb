package sandbox

import (
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"
)

type verdict int

const (
	allow verdict = iota
	reject
	blockNow
)

// violationWindow is how far back 429s count towards a block.
const violationWindow = time.Minute

// limiter is a token bucket per account (the sandbox has one integration,
// so per account is per integration token) plus the violation history that
// turns into a block. Guarded by Sandbox.mu.
type limiter struct {
	rate       float64
	blockAfter int
	buckets    map[int64]*bucket
}

type bucket struct {
	tokens     float64
	last       time.Time
	violations []time.Time
}

func newLimiter(rate, blockAfter int) *limiter {
	return &limiter{rate: float64(rate), blockAfter: blockAfter, buckets: map[int64]*bucket{}}
}

func (l *limiter) take(accountID int64, now time.Time) verdict {
	if l.rate <= 0 {
		return allow
	}
	b := l.buckets[accountID]
	if b == nil {
		b = &bucket{tokens: l.rate, last: now}
		l.buckets[accountID] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(l.rate, b.tokens+elapsed*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return allow
	}
	kept := b.violations[:0]
	for _, t := range b.violations {
		if now.Sub(t) < violationWindow {
			kept = append(kept, t)
		}
	}
	b.violations = append(kept, now)
	if l.blockAfter > 0 && len(b.violations) > l.blockAfter {
		b.violations = nil
		return blockNow
	}
	return reject
}

func (l *limiter) reset() { l.buckets = map[int64]*bucket{} }

// Faults configures fault injection on the amoCRM surface. Rates are shares
// of requests in [0,1]; all zero turns injection off. The same Seed gives
// the same sequence of faults for the same sequence of requests.
type Faults struct {
	Rate429     float64 `json:"rate_429"`
	Rate5xx     float64 `json:"rate_5xx"`
	LatencyMS   int     `json:"latency_ms"`
	RateTimeout float64 `json:"rate_timeout"`
	Seed        uint64  `json:"seed"`
}

type faultInjector struct {
	mu  sync.Mutex
	cfg Faults
	rnd *rand.Rand
}

func (f *faultInjector) set(cfg Faults) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg
	f.rnd = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
}

type faultKind int

const (
	faultNone faultKind = iota
	faultTimeout
	fault429
	fault5xx
)

var serverErrors = []int{500, 502, 503, 504}

func (f *faultInjector) roll() (kind faultKind, code int, latency time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rnd == nil {
		return faultNone, 0, 0
	}
	latency = time.Duration(f.cfg.LatencyMS) * time.Millisecond
	p := f.rnd.Float64()
	switch {
	case p < f.cfg.RateTimeout:
		return faultTimeout, 0, latency
	case p < f.cfg.RateTimeout+f.cfg.Rate429:
		return fault429, 0, latency
	case p < f.cfg.RateTimeout+f.cfg.Rate429+f.cfg.Rate5xx:
		return fault5xx, serverErrors[f.rnd.IntN(len(serverErrors))], latency
	}
	return faultNone, 0, latency
}

// applyFaults delays or fails the request as configured; it reports whether
// the request should go on.
// gatewayTimeout is how long a timeout fault holds a request at most (a
// gateway in front of amoCRM answers 504 after a while, too).
const gatewayTimeout = 30 * time.Second

func (s *Sandbox) applyFaults(w http.ResponseWriter, r *http.Request) bool {
	kind, code, latency := s.faults.roll()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		case <-s.closing:
			t.Stop()
		}
	}
	switch kind {
	case faultTimeout:
		// Hang until the client gives up, as an overloaded gateway does —
		// but, like a gateway, not forever: a client without a deadline
		// would otherwise hold the request (and the server's Close) open.
		gateway := time.NewTimer(gatewayTimeout)
		defer gateway.Stop()
		select {
		case <-r.Context().Done():
		case <-s.closing:
		case <-gateway.C:
		}
		w.WriteHeader(http.StatusGatewayTimeout)
		return false
	case fault429:
		s.stats.rateLimited()
		writeProblem(w, http.StatusTooManyRequests, "Too many requests")
		return false
	case fault5xx:
		if code == http.StatusInternalServerError {
			writeProblem(w, code, "Internal server error")
		} else {
			text := strconv.Itoa(code) + " " + http.StatusText(code)
			writeHTML(w, code, "<html>\n<head><title>"+text+"</title></head>\n<body>\n<center><h1>"+text+"</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n")
		}
		return false
	}
	return true
}

// counters are the request statistics a test can read.
type counters struct {
	mu         sync.Mutex
	requests   map[requestKey]int
	rateLimits int
	blocks     int
}

type requestKey struct {
	endpoint string
	status   int
}

func newCounters() *counters { return &counters{requests: map[requestKey]int{}} }

func (c *counters) request(endpoint string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests[requestKey{endpoint, status}]++
}

func (c *counters) rateLimited() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rateLimits++
}

func (c *counters) block() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocks++
}

// RequestCount is how many requests to one endpoint ended with one status.
// Endpoint is the method and route pattern, e.g. "GET /api/v4/leads/{id}".
type RequestCount struct {
	Endpoint string `json:"endpoint"`
	Status   int    `json:"status"`
	Count    int    `json:"count"`
}

func (c *counters) snapshot() (reqs []RequestCount, limited, blocks int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.requests {
		reqs = append(reqs, RequestCount{Endpoint: k.endpoint, Status: k.status, Count: n})
	}
	sort.Slice(reqs, func(i, j int) bool {
		if reqs[i].Endpoint != reqs[j].Endpoint {
			return reqs[i].Endpoint < reqs[j].Endpoint
		}
		return reqs[i].Status < reqs[j].Status
	})
	return reqs, c.rateLimits, c.blocks
}
