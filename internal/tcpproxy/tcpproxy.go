// Package tcpproxy is a minimal TCP proxy for tests that need to cut a
// process off from a server (storage) and reconnect it: it forwards
// connections to an upstream address, or refuses them, or accepts them and
// never answers, as told.
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Mode is what the proxy does with connections.
type Mode int

const (
	// Forward connects to the upstream and copies both ways; a client
	// whose upstream cannot be reached is disconnected at once.
	Forward Mode = iota
	// Refuse accepts and closes at once: requests fail fast, like a
	// server that is down.
	Refuse
	// Blackhole accepts and never answers: requests hang, like a stalled
	// network.
	Blackhole
)

// String names the mode.
func (m Mode) String() string {
	switch m {
	case Forward:
		return "forward"
	case Refuse:
		return "refuse"
	case Blackhole:
		return "blackhole"
	}
	return "unknown"
}

// Proxy listens on a loopback port and handles connections by its mode.
type Proxy struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	upstream string
	mode     Mode
	conns    map[net.Conn]struct{} // client and upstream sides in use
	closed   bool
}

// New starts a proxy on 127.0.0.1 (a free port) in Forward mode.
func New(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's listen address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetMode switches the mode. Every connection open at that moment is cut,
// so that clients notice at once and new connections get the new mode.
func (p *Proxy) SetMode(m Mode) {
	p.mu.Lock()
	p.mode = m
	p.cutLocked()
	p.mu.Unlock()
}

// SetUpstream changes where Forward connects to (for new connections).
func (p *Proxy) SetUpstream(addr string) {
	p.mu.Lock()
	p.upstream = addr
	p.mu.Unlock()
}

// Close stops listening and cuts every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cutLocked()
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) cutLocked() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// track registers an open connection; false if the proxy has closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		mode, upstream := p.mode, p.upstream
		p.mu.Unlock()
		if mode == Refuse || !p.track(c) {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			if mode == Blackhole {
				io.Copy(io.Discard, c) // until cut
				return
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				return
			}
			if !p.track(up) {
				up.Close()
				return
			}
			defer p.untrack(up)
			done := make(chan struct{}, 2)
			go func() { io.Copy(up, c); done <- struct{}{} }()
			go func() { io.Copy(c, up); done <- struct{}{} }()
			<-done // either side ended: close both, ending the other copy
		}()
	}
}
