package egress

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkEgress measures, side by side in one run: bulk throughput through
// a CONNECT tunnel against a direct loopback connection, the latency one
// request gains through the proxy, and connections per second.
func BenchmarkEgress(b *testing.B) {
	sink := tcpServer(b, func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Write([]byte{1})
	})
	echo := tcpServer(b, func(c net.Conn) { io.Copy(c, c) })
	httpUp, tlsUp, boundUp := newUpstream(b, false), newUpstream(b, true), newUpstream(b, true)
	res := newResolver("api.allowed.test", "127.0.0.1", "bound.test", "127.0.0.1")
	secret := "bench-secret-value-0123456789"
	ph := GeneratePlaceholder([]byte(secret))
	p := startProxy(b, Config{
		Allow: rules(b, sink.String(), echo.String(), hostPort("api.allowed.test", httpUp.port),
			hostPort("api.allowed.test", tlsUp.port), hostPort("bound.test", boundUp.port)),
		Substitutions: []Substitution{{Placeholder: ph, Secret: []byte(secret), Hosts: rules(b, hostPort("bound.test", boundUp.port))}},
		Resolve:       res.resolve,
		AllowPrivate:  loopback32,
		UpstreamRoots: getPKI(b).pool,
	})

	b.Run("throughput/direct", func(b *testing.B) { benchThroughput(b, func() net.Conn { return dialT(b, sink.String()) }) })
	b.Run("throughput/connect", func(b *testing.B) {
		benchThroughput(b, func() net.Conn { _, _, c := p.connect(b, sink.String()); return c })
	})

	direct := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: getPKI(b).pool, ServerName: "api.allowed.test"}}}
	viaProxy := p.client(b, getPKI(b).pool)
	roots := getPKI(b).pool.Clone()
	roots.AppendCertsFromPEM(p.CACertPEM())
	viaProxyMITM := p.client(b, roots)
	b.Run("latency/http-direct", func(b *testing.B) { benchGet(b, direct, httpUp.URL+"/") })
	b.Run("latency/http-proxy", func(b *testing.B) {
		benchGet(b, viaProxy, fmt.Sprintf("http://api.allowed.test:%d/", httpUp.port))
	})
	b.Run("latency/https-direct", func(b *testing.B) { benchGet(b, direct, tlsUp.URL+"/") })
	b.Run("latency/https-connect", func(b *testing.B) {
		benchGet(b, viaProxy, fmt.Sprintf("https://api.allowed.test:%d/", tlsUp.port))
	})
	b.Run("latency/https-terminated", func(b *testing.B) {
		benchGet(b, viaProxyMITM, fmt.Sprintf("https://bound.test:%d/", boundUp.port), "Authorization", "Bearer "+ph)
	})

	b.Run("conns/direct", func(b *testing.B) { benchConns(b, func() net.Conn { return dialT(b, echo.String()) }) })
	b.Run("conns/connect", func(b *testing.B) {
		benchConns(b, func() net.Conn { return connectOnce(b, p.addr, echo.String()) })
	})
}

func dialT(b *testing.B, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// connectOnce opens a CONNECT tunnel without registering cleanups, for
// loops that open many.
func connectOnce(b *testing.B, proxy, target string) net.Conn {
	c := dialT(b, proxy)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("CONNECT: %v %v", resp, err)
	}
	return &bufConn{Conn: c, r: br}
}

func benchThroughput(b *testing.B, open func() net.Conn) {
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	c := open()
	defer c.Close()
	c.SetDeadline(time.Time{})
	b.SetBytes(chunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if bc, ok := c.(*bufConn); ok {
		closeWrite(bc.Conn)
	} else {
		closeWrite(c)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil { // the sink read everything
		b.Fatal(err)
	}
}

func benchGet(b *testing.B, c *http.Client, u string, hdr ...string) {
	for i := 0; i < 3; i++ { // warm the connection pools
		if code, body, err := get(b, c, u, hdr...); err != nil || code != 200 {
			b.Fatalf("GET %s: %d %q %v", u, code, body, err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code, _, err := get(b, c, u, hdr...); err != nil || code != 200 {
			b.Fatalf("GET %s: %d %v", u, code, err)
		}
	}
}

func benchConns(b *testing.B, open func() net.Conn) {
	one := make([]byte, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := open()
		c.Write(one)
		if _, err := io.ReadFull(c, one); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
}
