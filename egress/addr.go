package egress

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// blockedRange is a range of addresses the proxy never dials unless told to.
type blockedRange struct {
	prefix netip.Prefix
	why    string
}

func mustPrefixes(why string, ps ...string) []blockedRange {
	out := make([]blockedRange, len(ps))
	for i, p := range ps {
		out[i] = blockedRange{netip.MustParsePrefix(p), why}
	}
	return out
}

// blockedRanges lists every non-public range. Cloud metadata endpoints fall
// inside them: 169.254.169.254 and fd00:ec2::254 (link-local/ULA),
// 100.100.100.200 (CGNAT), 192.0.0.192 (IETF protocol assignments).
var blockedRanges = concat(
	mustPrefixes("unspecified or this-network", "0.0.0.0/8", "::/128"),
	mustPrefixes("loopback", "127.0.0.0/8", "::1/128"),
	mustPrefixes("link-local", "169.254.0.0/16", "fe80::/10"),
	mustPrefixes("private", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10"),
	mustPrefixes("shared address space (CGNAT)", "100.64.0.0/10"),
	mustPrefixes("IETF protocol assignments", "192.0.0.0/24"),
	mustPrefixes("documentation or benchmarking", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "2001:db8::/32", "100::/64"),
	mustPrefixes("multicast", "224.0.0.0/4", "ff00::/8"),
	mustPrefixes("reserved or broadcast", "240.0.0.0/4"),
	mustPrefixes("IPv4-compatible IPv6", "::/96"),
	mustPrefixes("local-use NAT64", "64:ff9b:1::/48"),
	mustPrefixes("Teredo", "2001::/32"),
)

func concat(lists ...[]blockedRange) []blockedRange {
	var out []blockedRange
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 returns the IPv4 address carried by a NAT64 (64:ff9b::/96) or
// 6to4 (2002::/16) address.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// blockedReason returns why ip is not a public unicast address, or "" when it
// is. IPv4-mapped addresses are judged by the IPv4 address they map to, NAT64
// and 6to4 addresses by the IPv4 address they embed. own holds the host's
// interface addresses.
func blockedReason(ip netip.Addr, own map[netip.Addr]bool) string {
	ip = ip.Unmap()
	if ip.Zone() != "" {
		return "scoped address"
	}
	if v4, ok := embeddedIPv4(ip); ok {
		if why := blockedReason(v4, own); why != "" {
			return "translates to IPv4 " + v4.String() + ": " + why
		}
		return ""
	}
	if ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return "broadcast"
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(ip) {
			return r.why
		}
	}
	if own[ip] {
		return "address of the proxy host"
	}
	return ""
}

// hostAddrs caches the host's interface addresses. They are re-read at most
// once per refresh interval so that new interfaces are noticed.
type hostAddrs struct {
	mu      sync.Mutex
	read    time.Time
	addrs   map[netip.Addr]bool
	refresh time.Duration
}

func (h *hostAddrs) get() map[netip.Addr]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.addrs != nil && time.Since(h.read) < h.refresh {
		return h.addrs
	}
	m := make(map[netip.Addr]bool)
	if ifaddrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifaddrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				m[p.Addr().Unmap().WithZone("")] = true
			}
		}
	} else if h.addrs != nil {
		m = h.addrs // keep the last good view rather than forgetting addresses
	}
	h.addrs, h.read = m, time.Now()
	return m
}
