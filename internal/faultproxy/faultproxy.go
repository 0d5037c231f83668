// Package faultproxy is an HTTP proxy that injects the storage faults real
// deployments see, for tests that put it between an app and Azurite: the
// app's connection string names the proxy's endpoints, the proxy forwards
// each call to Azurite and, for a configurable fraction of calls, instead
//
//   - answers 503 ServerBusy without forwarding (a throttled account),
//   - resets the connection without forwarding (a network failure),
//   - holds the call for a delay before forwarding it (a call that outlives
//     the caller's timeout; it is still carried out, as a slow server
//     would), or
//   - forwards a write and then resets the connection instead of answering
//     (a write that committed but whose answer was lost).
//
// Faults are off until SetEnabled(true). Which call gets which fault is
// drawn from a random source seeded by Options.Seed, one draw per call in
// arrival order, so a run with the same seed and the same order of calls
// injects the same faults.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a kind of injected fault.
type Kind int

// The fault kinds.
const (
	// ServerBusy answers 503 with error code ServerBusy, without forwarding.
	ServerBusy Kind = iota
	// Reset resets the connection (TCP RST) without forwarding.
	Reset
	// Timeout holds the call for Options.Delay, then forwards it; the answer
	// reaches the caller only if it is still waiting.
	Timeout
	// LostResponse forwards a write (PUT, POST, MERGE, DELETE, PATCH) and
	// resets the connection instead of answering. Reads are not affected.
	LostResponse

	numKinds
)

// Kinds lists every fault kind in order.
var Kinds = []Kind{ServerBusy, Reset, Timeout, LostResponse}

var kindNames = [...]string{"ServerBusy", "Reset", "Timeout", "LostResponse"}

// String returns the kind's name, e.g. "LostResponse".
func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// DefaultDelay is how long a Timeout fault holds a call when Options.Delay
// is 0.
const DefaultDelay = 5 * time.Second

// ErrInvalidOptions is wrapped by New's errors.
var ErrInvalidOptions = errors.New("faultproxy: invalid options")

// Rates are the fractions of calls (0..1, at most 1 in total) that get each
// fault while faults are enabled. LostResponse is the fraction of all calls,
// applied to writes only.
type Rates struct {
	ServerBusy, Reset, Timeout, LostResponse float64
}

func (r Rates) of(k Kind) float64 {
	return [...]float64{r.ServerBusy, r.Reset, r.Timeout, r.LostResponse}[k]
}

// Options configures a Proxy.
type Options struct {
	// Rates are the fault fractions.
	Rates Rates
	// Seed seeds the choice of faulty calls.
	Seed uint64
	// Delay is how long a Timeout fault holds a call; 0 means DefaultDelay.
	Delay time.Duration
	// Logger receives one debug line per injected fault; default: none.
	Logger *slog.Logger
}

// Stats counts what the proxy did.
type Stats struct {
	// Calls is the number of requests received.
	Calls int64
	// Forwarded is the number of requests passed on to a target (including
	// those of Timeout and LostResponse faults).
	Forwarded int64
	// Faults counts the injected faults by kind.
	Faults map[Kind]int64
}

// Total returns the number of injected faults.
func (s Stats) Total() int64 {
	var n int64
	for _, c := range s.Faults {
		n += c
	}
	return n
}

// String renders the counts on one line, e.g. "calls 812, forwarded 790,
// faults 41 (ServerBusy 11, Reset 9, Timeout 10, LostResponse 11)".
func (s Stats) String() string {
	parts := make([]string, len(Kinds))
	for i, k := range Kinds {
		parts[i] = fmt.Sprintf("%s %d", k, s.Faults[k])
	}
	return fmt.Sprintf("calls %d, forwarded %d, faults %d (%s)", s.Calls, s.Forwarded, s.Total(), strings.Join(parts, ", "))
}

// Proxy is a fault-injecting HTTP proxy. It is safe for concurrent use.
type Proxy struct {
	rates Rates
	delay time.Duration
	log   *slog.Logger

	enabled   atomic.Bool
	calls     atomic.Int64
	forwarded atomic.Int64
	faults    [numKinds]atomic.Int64

	mu  sync.Mutex // guards rng and servers
	rng *rand.Rand

	servers   []*http.Server
	transport *http.Transport
	ctx       context.Context // cancelled by Close, ending held calls
	cancel    context.CancelFunc
	inflight  sync.WaitGroup
}

// New validates opts and returns a Proxy with faults off and no listener;
// call Listen for each target.
func New(opts Options) (*Proxy, error) {
	total := 0.0
	for _, k := range Kinds {
		r := opts.Rates.of(k)
		if r < 0 || r > 1 || math.IsNaN(r) {
			return nil, fmt.Errorf("%w: rate of %s is %v, outside 0..1", ErrInvalidOptions, k, r)
		}
		total += r
	}
	if total > 1 {
		return nil, fmt.Errorf("%w: the rates add up to %v, more than 1", ErrInvalidOptions, total)
	}
	if opts.Delay < 0 {
		return nil, fmt.Errorf("%w: negative delay %v", ErrInvalidOptions, opts.Delay)
	}
	p := &Proxy{
		rates: opts.Rates,
		delay: opts.Delay,
		log:   opts.Logger,
		rng:   rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     4 * time.Second, // Azurite drops idle connections after 5 s
		},
	}
	if p.delay == 0 {
		p.delay = DefaultDelay
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// Listen starts a front end on a free loopback port that forwards to target
// (a base URL such as "http://127.0.0.1:10001"; its path is ignored, request
// paths are passed on as they are) and returns the front end's base URL.
func (p *Proxy) Listen(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("%w: target %q is not an http(s) URL with a host", ErrInvalidOptions, target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("faultproxy: listen: %w", err)
	}
	srv := &http.Server{Handler: p.handler(u), ReadHeaderTimeout: 10 * time.Second}
	p.mu.Lock()
	p.servers = append(p.servers, srv)
	p.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// SetEnabled switches fault injection on or off; calls are forwarded
// faithfully while it is off.
func (p *Proxy) SetEnabled(on bool) { p.enabled.Store(on) }

// Enabled reports whether faults are being injected.
func (p *Proxy) Enabled() bool { return p.enabled.Load() }

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	s := Stats{Calls: p.calls.Load(), Forwarded: p.forwarded.Load(), Faults: map[Kind]int64{}}
	for _, k := range Kinds {
		s.Faults[k] = p.faults[k].Load()
	}
	return s
}

// Close stops every front end, ends held calls and waits for the calls in
// progress to return.
func (p *Proxy) Close() error {
	p.cancel()
	p.mu.Lock()
	servers := p.servers
	p.servers = nil
	p.mu.Unlock()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Close())
	}
	p.inflight.Wait()
	p.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// isWrite reports whether a request with this method changes state.
func isWrite(method string) bool {
	switch method {
	case http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch, "MERGE":
		return true
	}
	return false
}

// decide draws the fate of one call: a fault kind, or ok == false to pass
// it through.
func (p *Proxy) decide(method string) (Kind, bool) {
	p.calls.Add(1)
	if !p.enabled.Load() {
		return 0, false
	}
	p.mu.Lock()
	u := p.rng.Float64()
	p.mu.Unlock()
	for _, k := range Kinds {
		r := p.rates.of(k)
		if u < r {
			if k == LostResponse && !isWrite(method) {
				return 0, false
			}
			p.faults[k].Add(1)
			return k, true
		}
		u -= r
	}
	return 0, false
}

// hopHeaders are not passed on by a proxy.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *Proxy) handler(target *url.URL) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.inflight.Add(1)
		defer p.inflight.Done()
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // the caller went away mid-request
		}
		kind, fault := p.decide(r.Method)
		if fault {
			p.log.Debug("faultproxy: injecting fault", "kind", kind.String(), "method", r.Method, "path", r.URL.Path)
		}
		switch {
		case !fault:
			resp, err := p.forward(r.Context(), target, r, body)
			if err != nil {
				http.Error(w, "faultproxy: forward: "+err.Error(), http.StatusBadGateway)
				return
			}
			copyResponse(w, resp)
		case kind == ServerBusy:
			serverBusy(w, r)
		case kind == Reset:
			reset(w)
		case kind == Timeout:
			select {
			case <-time.After(p.delay):
			case <-p.ctx.Done():
				reset(w)
				return
			}
			// A server that received the call carries it out even if the
			// caller has given up meanwhile.
			resp, err := p.forward(p.ctx, target, r, body)
			if err != nil {
				reset(w)
				return
			}
			if r.Context().Err() != nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return
			}
			copyResponse(w, resp)
		case kind == LostResponse:
			resp, err := p.forward(r.Context(), target, r, body)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body) // the write has been carried out
				resp.Body.Close()
			}
			reset(w)
		}
	})
}

// forward passes r (with its already read body) on to target.
func (p *Proxy) forward(ctx context.Context, target *url.URL, r *http.Request, body []byte) (*http.Response, error) {
	u := *r.URL
	u.Scheme, u.Host = target.Scheme, target.Host
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.ContentLength = int64(len(body))
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	p.forwarded.Add(1)
	return resp, nil
}

// copyResponse writes resp to w and closes its body.
func copyResponse(w http.ResponseWriter, resp *http.Response) {
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// serverBusy answers like a throttled storage service: 503, error code
// ServerBusy, with a JSON body for the Table service (whose clients ask for
// JSON) and XML for the others.
func serverBusy(w http.ResponseWriter, r *http.Request) {
	const msg = "The server is busy. (injected by faultproxy)"
	w.Header().Set("x-ms-error-code", "ServerBusy")
	if strings.Contains(r.Header.Get("Accept"), "json") || r.Header.Get("DataServiceVersion") != "" {
		w.Header().Set("Content-Type", "application/json;odata=minimalmetadata;charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"odata.error":{"code":"ServerBusy","message":{"lang":"en-US","value":%q}}}`, msg)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>%s</Message></Error>`, msg)
}

// reset aborts the caller's connection with a TCP reset.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // makes the server drop the connection
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // close with RST, not FIN
	}
	_ = conn.Close()
}
