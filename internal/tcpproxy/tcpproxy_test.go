package tcpproxy

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line through addr and returns the answer or the error.
func roundTrip(addr string) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestModes(t *testing.T) {
	up := echoServer(t)
	p, err := New("127.0.0.1:1") // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got, err := roundTrip(p.Addr()); err == nil {
		t.Fatalf("unreachable upstream answered %q", got)
	}
	p.SetUpstream(up)
	if got, err := roundTrip(p.Addr()); err != nil || got != "ping\n" {
		t.Fatalf("forward: %q, %v", got, err)
	}

	// A connection open while the mode changes is cut.
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := c.Write([]byte("a\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "a\n" {
		t.Fatalf("before the cut: %q, %v", line, err)
	}
	p.SetMode(Refuse)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on a cut connection: %v, want it closed", err)
	}
	if got, err := roundTrip(p.Addr()); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("refuse: %q, %v; want the connection closed at once", got, err)
	}

	p.SetMode(Blackhole)
	if got, err := roundTrip(p.Addr()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blackhole: %q, %v; want no answer", got, err)
	}

	p.SetMode(Forward)
	if got, err := roundTrip(p.Addr()); err != nil || got != "ping\n" {
		t.Fatalf("forward again: %q, %v", got, err)
	}
}
