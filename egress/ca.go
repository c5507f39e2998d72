package egress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"time"
)

const (
	caValidity   = 90 * 24 * time.Hour
	leafValidity = 7 * 24 * time.Hour
	// leafRenewBefore re-issues a cached leaf this long before it expires.
	leafRenewBefore = 24 * time.Hour
	// maxCachedLeaves bounds the leaf cache (wildcard bindings can name many hosts).
	maxCachedLeaves = 1024
)

// authority is the per-proxy CA that issues leaf certificates for the hosts
// whose TLS the proxy terminates. Its certificate carries name constraints
// limited to those hosts, so a sandbox that trusts it trusts it for nothing
// else.
type authority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

func newAuthority(bound []Rule) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "kavach egress proxy CA", Organization: []string{"kavach"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	constrainTo(tmpl, bound)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &authority{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		leaves:  make(map[string]*tls.Certificate),
	}, nil
}

// constrainTo limits the CA to the names and addresses of the bound rules.
// A name constraint "example.com" also admits its subdomains; ".example.com"
// admits subdomains only, matching a wildcard rule. An empty list would mean
// "unconstrained", so a kind of name without bound rules is limited to a
// reserved value that no target can use ("invalid", 0.0.0.0/32, ::/128).
func constrainTo(tmpl *x509.Certificate, bound []Rule) {
	tmpl.PermittedDNSDomainsCritical = true
	for _, r := range bound {
		switch {
		case r.IP.IsValid():
			bits := r.IP.BitLen()
			tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges,
				&net.IPNet{IP: r.IP.AsSlice(), Mask: net.CIDRMask(bits, bits)})
		case r.Wildcard:
			tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, "."+r.Host)
		default:
			tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, r.Host)
		}
	}
	if len(tmpl.PermittedDNSDomains) == 0 {
		tmpl.PermittedDNSDomains = []string{"invalid"}
	}
	if len(tmpl.PermittedIPRanges) == 0 {
		tmpl.PermittedIPRanges = []*net.IPNet{
			{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(32, 32)},
			{IP: net.IPv6unspecified, Mask: net.CIDRMask(128, 128)},
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("egress: crypto/rand failed: %v", err)) // crypto/rand does not fail on Linux
	}
	return n
}

// leaf returns a certificate for host (a name or an IP literal), issuing and
// caching it on first use.
func (a *authority) leaf(host string) (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.leaves[host]; ok && time.Until(c.Leaf.NotAfter) > leafRenewBefore {
		return c, nil
	}
	c, err := a.issue(host)
	if err != nil {
		return nil, err
	}
	if len(a.leaves) >= maxCachedLeaves {
		clear(a.leaves)
	}
	a.leaves[host] = c
	return c, nil
}

func (a *authority) issue(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate leaf key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     earliest(now.Add(leafValidity), a.cert.NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, fmt.Errorf("issue leaf certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse leaf certificate for %s: %w", host, err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, a.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}
