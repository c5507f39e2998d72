// Package egress is kavach's egress proxy: the only way out of a sandbox that
// runs with a network allowlist.
//
// The proxy speaks HTTP CONNECT, plain-HTTP forward proxying and SOCKS5
// CONNECT. Every
// connection is checked against an allowlist of host names, wildcard domains,
// ports and IP literals; names are resolved by the proxy itself and every
// resolved address is checked against loopback, link-local, private and other
// non-public ranges before the proxy dials exactly the address it checked.
// CONNECT tunnels must carry a TLS ClientHello whose SNI equals the CONNECT
// host, and plain-HTTP requests must carry a Host header equal to the request
// target, so an allowed name cannot be used to front a different one.
//
// For hosts bound to a credential (Substitution or HeaderRule) the proxy
// terminates TLS with a certificate issued by a per-proxy CA, swaps
// placeholders for real secrets or adds headers, and verifies the upstream
// against the configured roots. A placeholder, or the real value of a
// secret in any common encoding, seen on its way to any other host is
// blocked and reported as a leak. Every response the proxy forwards is
// cleaned of the secrets (raw, hex, base64 also when line-wrapped, UTF-16;
// percent- or JSON-escaped, or as HTML character references), which are
// replaced by their placeholders. Range requests to bound hosts are not
// forwarded.
//
// Every decision is reported as an Event; events never carry secret values.
package egress
