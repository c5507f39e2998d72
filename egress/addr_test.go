package egress

import (
	"net/netip"
	"testing"
)

func TestBlockedReason(t *testing.T) {
	blocked := []string{
		"127.0.0.1", "127.255.0.1", "::1", "0.0.0.0", "::", "0.1.2.3",
		"169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254",
		"10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.100.100.200",
		"192.0.0.192", "fc00::1", "fdff::1", "224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255",
		"240.0.0.1", "198.18.0.1", "192.0.2.1", "2001:db8::1",
		"::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.1.2.3",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b:1::1",
		"2002:7f00:1::1", "2002:a9fe:a9fe::1", "::127.0.0.1", "2001:0:4136:e378::1",
	}
	for _, s := range blocked {
		if why := blockedReason(netip.MustParseAddr(s), nil); why == "" {
			t.Errorf("%s is not blocked", s)
		}
	}
	public := []string{
		"1.1.1.1", "8.8.8.8", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
	}
	for _, s := range public {
		if why := blockedReason(netip.MustParseAddr(s), nil); why != "" {
			t.Errorf("%s blocked as %q", s, why)
		}
	}
	own := map[netip.Addr]bool{netip.MustParseAddr("8.8.4.4"): true}
	if why := blockedReason(netip.MustParseAddr("::ffff:8.8.4.4"), own); why == "" {
		t.Error("the host's own address is not blocked")
	}
}

func TestCheckAddrExceptions(t *testing.T) {
	p, err := New(Config{
		Allow:        rules(t, "10.1.2.3:8080", "svc.test"),
		AllowPrivate: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	name := target{host: "svc.test", port: 8080}
	cases := []struct {
		addr string
		ok   bool
	}{
		{"10.1.2.3:8080", true},          // named literally by the allowlist
		{"[::ffff:10.1.2.3]:8080", true}, // same socket address
		{"10.1.2.3:8081", false},         // literal rule is for 8080 only
		{"10.1.2.4:8080", false},
		{"127.0.0.1:8080", true},               // AllowPrivate
		{"127.0.0.2:8080", false},              // outside AllowPrivate
		{"[64:ff9b::7f00:1]:8080", false},      // NAT64 form is a different destination
		{"169.254.169.254:8080", false},        // metadata
		{"[fd00:ec2::254]:8080", false},        // metadata (IPv6)
		{"[::ffff:169.254.169.254]:80", false}, // mapped metadata
	}
	for _, c := range cases {
		ap := netip.MustParseAddrPort(c.addr)
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if err := p.checkAddr(name, ap); (err == nil) != c.ok {
			t.Errorf("checkAddr(%s) = %v, want ok=%v", c.addr, err, c.ok)
		}
	}
}
