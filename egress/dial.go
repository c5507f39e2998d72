package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// dialUpstream is the transport's dialer: it resolves, checks and dials
// addr exactly like a CONNECT does.
func (p *Proxy) dialUpstream(ctx context.Context, network, addr string) (net.Conn, error) {
	t, err := parseTarget(addr, 0)
	if err != nil {
		return nil, err
	}
	aps, err := p.checkedAddrs(ctx, t)
	if err != nil {
		return nil, err
	}
	return p.dialAddrs(ctx, aps)
}

// checkedAddrs resolves t (on every call: no caching, so a name that is
// re-pointed is re-checked) and returns the addresses the proxy may dial. It
// fails when none is allowed, naming the first refused address.
func (p *Proxy) checkedAddrs(ctx context.Context, t target) ([]netip.AddrPort, error) {
	ips := []netip.Addr{t.ip}
	if !t.ip.IsValid() {
		var err error
		if ips, err = p.cfg.Resolve(ctx, t.host); err != nil {
			return nil, fmt.Errorf("%w: resolve %s: %v", ErrUpstream, t.host, err)
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("%w: resolve %s: no addresses", ErrUpstream, t.host)
		}
	}
	var ok []netip.AddrPort
	var refused error
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(t.port))
		if err := p.checkAddr(t, ap); err != nil {
			refused = cmpOr(refused, err)
			continue
		}
		ok = append(ok, ap)
	}
	if len(ok) == 0 {
		return nil, refused
	}
	return ok, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// checkAddr decides whether the proxy may dial ap on behalf of target t. The
// proxy's own listeners are always refused; a non-public address only when
// the allowlist names it literally or it lies inside Config.AllowPrivate.
func (p *Proxy) checkAddr(t target, ap netip.AddrPort) error {
	if p.isSelf(ap) {
		return fmt.Errorf("%w: %s", ErrProxyItself, ap)
	}
	why := blockedReason(ap.Addr(), p.own.get())
	if why == "" || p.excepted(ap) {
		return nil
	}
	if t.ip.IsValid() {
		return fmt.Errorf("%w: %s is %s", ErrAddressNotAllowed, ap.Addr(), why)
	}
	return fmt.Errorf("%w: %s resolves to %s (%s)", ErrAddressNotAllowed, t.host, ap.Addr(), why)
}

func (p *Proxy) excepted(ap netip.AddrPort) bool {
	for _, r := range p.cfg.Allow {
		if r.matchesAddr(ap) {
			return true
		}
	}
	for _, pfx := range p.cfg.AllowPrivate {
		if pfx.Contains(ap.Addr()) {
			return true
		}
	}
	return false
}

// dialAddrs dials the checked addresses in order and returns the first
// connection. It never resolves: what was checked is what is dialed.
func (p *Proxy) dialAddrs(ctx context.Context, aps []netip.AddrPort) (net.Conn, error) {
	var errs []error
	for _, ap := range aps {
		c, err := p.cfg.Dial(ctx, "tcp", ap.String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %w", ErrUpstream, errors.Join(errs...))
}
