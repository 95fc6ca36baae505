package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/modgate/modgate/internal/redact"
)

// maxSkew is how far the local clock may be from the server's before
// doctor warns: certificates and tokens start failing around there.
const maxSkew = 2 * time.Minute

// prober checks one GOPROXY entry step by step; a failed step skips the
// ones that depend on it.
type prober struct {
	env      Env
	settings settings
	trust    trust
	netrc    netrcInfo
	timeout  time.Duration
	report   *Report

	target string // the entry, credentials redacted
}

func (p *prober) add(name string, st Status, detail, fix string) {
	p.report.add(Check{Target: p.target, Name: name, Status: st, Detail: detail, Fix: fix})
}

func (p *prober) skipRest(after string, steps ...string) {
	p.add(strings.Join(steps, ", "), Skip, "skipped: the "+after+" step failed", "")
}

func (p *prober) run(ctx context.Context, entry string) {
	p.target = redact.URL(entry)
	switch entry {
	case "direct":
		p.add("entry", Skip, `"direct": the go command fetches from each module's own server (git for most), which behind a firewall needs git, credentials and an open internet; doctor does not check that path`, "")
		return
	case "off":
		p.add("entry", Skip, `"off": the go command stops here and downloads nothing more`, "")
		return
	}
	u, err := url.Parse(entry)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add("entry", Fail, "not an http or https URL, so the go command cannot use it as a proxy", p.settings.fixProxy())
		return
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	dialHost, dialPort := u.Hostname(), port
	egress, err := egressProxy(p.env.Getenv, u)
	if err != nil {
		p.add("egress proxy", Fail, err.Error(), "fix HTTPS_PROXY/HTTP_PROXY: http://host:port")
		return
	}
	if egress != nil {
		p.add("egress proxy", OK, "reached through the egress proxy "+redact.URL(egress.String())+" (NO_PROXY does not exclude it)", "")
		dialHost, dialPort = egress.Hostname(), egress.Port()
		if dialPort == "" {
			dialPort = map[string]string{"https": "443", "http": "80"}[egress.Scheme]
		}
	}

	if !p.dns(ctx, dialHost) {
		p.skipRest("DNS", "tcp", "tls", "http")
		return
	}
	if !p.tcp(ctx, net.JoinHostPort(dialHost, dialPort)) {
		p.skipRest("TCP", "tls", "http")
		return
	}
	if u.Scheme == "https" && egress == nil {
		if !p.tls(ctx, u, port) {
			p.skipRest("TLS", "http")
			return
		}
	}
	client := p.client(egress)
	base := strings.TrimSuffix(u.String(), "/")
	if !p.protocol(ctx, client, base, u) {
		return
	}
	setup := p.modgate(ctx, client, base)
	p.sumdb(ctx, client, base, setup)
	p.private(setup)
}

func (p *prober) dns(ctx context.Context, host string) bool {
	if net.ParseIP(host) != nil {
		p.add("dns", OK, host+" is an IP address", "")
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		detail := fmt.Sprintf("cannot resolve %s: %v", host, err)
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			detail = fmt.Sprintf("no such host %s: the name is wrong, or this machine's DNS server does not know it (internal names need the company's DNS, e.g. over the VPN)", host)
		} else if errors.As(err, &dnsErr) && dnsErr.IsTimeout {
			detail = fmt.Sprintf("DNS lookup of %s timed out after %s: the DNS server in /etc/resolv.conf does not answer", host, p.timeout)
		}
		p.add("dns", Fail, detail, "check the host name: "+p.settings.fixProxy()+" (or fix the DNS server in /etc/resolv.conf)")
		return false
	}
	p.add("dns", OK, fmt.Sprintf("%s is %s", host, strings.Join(addrs, ", ")), "")
	return true
}

func (p *prober) tcp(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: p.timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var detail, fix string
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			detail = fmt.Sprintf("connection to %s refused: nothing listens there (proxy not running, or wrong port)", addr)
			fix = "start the proxy there (modgate serve), or correct the port: " + p.settings.fixProxy()
		case errors.As(err, &ne) && ne.Timeout():
			detail = fmt.Sprintf("no answer from %s within %s: a firewall drops the connection, or the host is down", addr, p.timeout)
			fix = "ask for the port to be opened, or go through the egress proxy: export HTTPS_PROXY=http://proxy.example.internal:3128"
		default:
			detail = fmt.Sprintf("cannot connect to %s: %v", addr, err)
			fix = "check the network path to " + addr
		}
		p.add("tcp", Fail, detail, fix)
		return false
	}
	conn.Close()
	p.add("tcp", OK, "connected to "+addr, "")
	return true
}

func (p *prober) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: p.trust.pool, MinVersion: tls.VersionTLS12}
}

func (p *prober) tls(ctx context.Context, u *url.URL, port string) bool {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: p.timeout}, Config: p.tlsConfig()}
	d.Config.ServerName = u.Hostname()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		detail, fix := p.explainTLS(ctx, err, u)
		p.add("tls", Fail, detail, fix)
		return false
	}
	defer conn.Close()
	state := conn.(*tls.Conn).ConnectionState()
	leaf := state.PeerCertificates[0]
	now := p.env.Now()
	detail := fmt.Sprintf("%s, certificate for %s issued by %q, valid until %s", tls.VersionName(state.Version), u.Hostname(), leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.DateOnly))
	if left := leaf.NotAfter.Sub(now); left < 14*24*time.Hour {
		p.add("tls", Warn, detail+fmt.Sprintf("; it expires in %s", left.Round(time.Hour)), "ask the proxy's operator to renew its certificate")
		return true
	}
	p.add("tls", OK, detail, "")
	return true
}

// explainTLS says in plain words why a TLS handshake failed and what
// fixes it.
func (p *prober) explainTLS(ctx context.Context, err error, u *url.URL) (detail, fix string) {
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		issuer := "unknown"
		if unknown.Cert != nil {
			issuer = unknown.Cert.Issuer.String()
		}
		detail = fmt.Sprintf("the server's certificate is signed by a CA this machine does not trust (issuer %q); Go reads %s", issuer, p.trust.where)
		if p.trust.pool != nil {
			fix = fmt.Sprintf("append that CA's certificate (PEM) to the file named by %s", p.trust.where)
		} else {
			fix = "export SSL_CERT_FILE=/path/to/company-ca.pem (a PEM file with the CA; add it to your shell profile and CI)\n" +
				"or put it in the system store: sudo cp company-ca.pem /usr/local/share/ca-certificates/company-ca.crt && sudo update-ca-certificates"
		}
	case errors.As(err, &hostErr):
		names := "no names"
		if hostErr.Certificate != nil {
			names = strings.Join(append(hostErr.Certificate.DNSNames, ipStrings(hostErr.Certificate.IPAddresses)...), ", ")
		}
		detail = fmt.Sprintf("the server's certificate is for %s, not %s (name mismatch)", names, hostErr.Host)
		fix = "use a name the certificate is for: go env -w GOPROXY=https://<one of those names>" + portSuffix(u) + ", or ask the operator to add " + hostErr.Host + " to the certificate"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		now := p.env.Now()
		detail = fmt.Sprintf("the server's certificate is not valid at this machine's time %s (%s)", now.UTC().Format(time.RFC3339), invalid.Detail)
		fix = "ask the proxy's operator to renew its certificate"
		if skew, ok := p.serverSkew(ctx, u); ok && (skew > maxSkew || skew < -maxSkew) {
			detail += fmt.Sprintf("; this machine's clock is %s off the server's", skew.Round(time.Second))
			fix = "set this machine's clock: sudo timedatectl set-ntp true"
		}
	default:
		detail = "TLS handshake failed: " + redact.Text(err.Error())
		fix = "check that " + u.Host + " speaks https (or use http:// if the proxy has no TLS)"
	}
	return detail, fix
}

// serverSkew asks the server for its time (the Date header of /healthz),
// without checking its certificate and without credentials: it only
// learns the time, to tell an expired certificate from a wrong clock.
func (p *prober) serverSkew(ctx context.Context, u *url.URL) (time.Duration, bool) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Proxy: nil}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: p.timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	target := url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/healthz"}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, target.String(), nil)
	if err != nil {
		return 0, false
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, false
	}
	resp.Body.Close()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return 0, false
	}
	return p.env.Now().Sub(date), true
}

func ipStrings(ips []net.IP) []string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return s
}

func portSuffix(u *url.URL) string {
	if u.Port() != "" {
		return ":" + u.Port()
	}
	return ""
}

func (p *prober) client(egress *url.URL) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:       p.tlsConfig(),
		Proxy:                 func(*http.Request) (*url.URL, error) { return egress, nil },
		TLSHandshakeTimeout:   p.timeout,
		ResponseHeaderTimeout: p.timeout,
	}
	return &http.Client{Transport: tr, Timeout: p.timeout}
}

// get fetches base+path with the credentials the go command would send
// (user information in the GOPROXY URL, else a .netrc entry for the host
// when GOAUTH uses netrc). It returns the status, the response header and
// up to limit bytes of the body.
func (p *prober) get(ctx context.Context, c *http.Client, base, path string, limit int64) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	if req.URL.User == nil && strings.Contains(";"+strings.ReplaceAll(p.settings.goauth, " ", "")+";", ";netrc;") {
		if e, ok := p.netrc.lookup(req.URL.Host); ok {
			req.SetBasicAuth(e.Login, e.Password)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	return resp.StatusCode, resp.Header, body, err
}

// bodyLine is an error body fit to show: the go command shows text/plain
// bodies, so doctor does too, on one line, credentials redacted.
func bodyLine(h http.Header, body []byte) string {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "text/plain" || len(body) == 0 {
		return ""
	}
	return ": " + redact.Line(string(body), 300)
}

// protocol asks for a module version list, the cheapest GOPROXY request.
func (p *prober) protocol(ctx context.Context, c *http.Client, base string, u *url.URL) bool {
	const probe = "/golang.org/x/mod/@v/list"
	status, h, body, err := p.get(ctx, c, base, probe, 648)
	if err != nil {
		var unknown x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		var invalid x509.CertificateInvalidError
		if errors.As(err, &unknown) || errors.As(err, &hostErr) || errors.As(err, &invalid) {
			detail, fix := p.explainTLS(ctx, err, u)
			p.add("http", Fail, detail, fix)
			return false
		}
		p.add("http", Fail, "GET "+probe+": "+redact.Text(err.Error()), "check that the proxy is healthy: curl -v "+p.target+"/healthz")
		return false
	}
	p.clock(h)
	switch {
	case status == http.StatusOK || status == http.StatusNotFound || status == http.StatusGone:
		p.add("http", OK, fmt.Sprintf("GET %s answered %d: the GOPROXY protocol works", probe, status), "")
		return true
	case status == http.StatusUnauthorized:
		st, detail := Fail, fmt.Sprintf("GET %s answered 401: the proxy wants credentials", probe)
		if _, ok := p.netrc.lookup(u.Host); ok {
			detail += fmt.Sprintf(", and the ones in %s for %s were refused", p.netrc.path, u.Host)
		}
		if strings.Contains(describeGoAuth(p.settings.goauth), "command") {
			st, detail = Warn, detail+"; GOAUTH runs a command doctor does not run, which may provide them"
		}
		p.add("http", st, detail, fmt.Sprintf("go env -w GOAUTH='modgate goauth --url %s --token-file ~/.config/modgate/token'\nor add to %s (chmod 600): machine %s login <user> password <token>", p.target, orDefault(p.netrc.path, "~/.netrc"), u.Host))
		return st != Fail
	case status == http.StatusForbidden:
		p.add("http", Fail, fmt.Sprintf("GET %s answered 403%s: the token has no access to this module, or a policy blocks it", probe, bodyLine(h, body)), "ask the proxy's operator for a token allowed to read golang.org/x/mod (modgate token add)")
		return false
	default:
		p.add("http", Fail, fmt.Sprintf("GET %s answered %d%s", probe, status, bodyLine(h, body)), "the proxy answers but fails: check its health and upstream (curl "+p.target+"/readyz) or ask its operator")
		return false
	}
}

// clock compares the server's Date header with the local clock.
func (p *prober) clock(h http.Header) {
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return
	}
	skew := p.env.Now().Sub(date)
	if skew > maxSkew || skew < -maxSkew {
		p.add("clock", Warn, fmt.Sprintf("this machine's clock is %s off the server's: certificates and tokens may look expired or not yet valid", skew.Round(time.Second)), "sudo timedatectl set-ntp true")
	}
}

// setupInfo is what a modgate says about itself at /setup.json.
type setupInfo struct {
	Modgate bool            `json:"modgate"`
	Version string          `json:"version"`
	Private json.RawMessage `json:"private"`
	SumDB   string          `json:"sumdb"`
	Tokens  bool            `json:"tokens"`

	private []string
}

// patterns decodes "private", a list or a comma-separated string.
func (s *setupInfo) patterns() []string {
	var list []string
	if json.Unmarshal(s.Private, &list) == nil {
		return list
	}
	var str string
	if json.Unmarshal(s.Private, &str) == nil {
		for p := range strings.SplitSeq(str, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
	}
	return list
}

// modgate learns whether the proxy is a modgate and, if so, its settings.
func (p *prober) modgate(ctx context.Context, c *http.Client, base string) *setupInfo {
	status, _, _, err := p.get(ctx, c, base, "/healthz", 64)
	if err != nil || status != http.StatusOK {
		p.add("modgate", Skip, "no /healthz here: not a modgate, so its settings cannot be compared", "")
		return nil
	}
	status, _, body, err := p.get(ctx, c, base, "/setup.json", 64<<10)
	var info setupInfo
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &info) != nil || !info.Modgate {
		p.add("modgate", Skip, "answers /healthz but has no /setup.json (an older modgate, or another proxy): its settings cannot be compared", "")
		return nil
	}
	info.private = info.patterns()
	p.add("modgate", OK, fmt.Sprintf("modgate %s; checksum database %s; private %s; tokens %v", redact.Line(info.Version, 40), redact.Line(orDefault(info.SumDB, "?"), 100), orDefault(strings.Join(info.private, ","), "none"), info.Tokens), "")
	return &info
}

// sumdb checks that the go command reaches its checksum database through
// this proxy; otherwise it connects to the database directly, which
// behind a firewall fails.
func (p *prober) sumdb(ctx context.Context, c *http.Client, base string, setup *setupInfo) {
	name := p.settings.sumdbName
	if name == "" {
		p.add("checksum database", Skip, "GOSUMDB=off", "")
		return
	}
	path := "/sumdb/" + name + "/supported"
	status, h, body, err := p.get(ctx, c, base, path, 648)
	switch {
	case err != nil:
		p.add("checksum database", Fail, "GET "+path+": "+redact.Text(err.Error()), "")
	case status == http.StatusOK:
		p.add("checksum database", OK, fmt.Sprintf("%s is reached through this proxy", name), "")
	default:
		fix := "start the proxy with a checksum database (modgate serve --sumdb " + name + ")"
		if setup != nil && setup.SumDB != "" && setup.SumDB != "off" {
			server, _, _ := strings.Cut(strings.Fields(setup.SumDB)[0], "+")
			fix = "go env -w GOSUMDB=" + server
		}
		p.add("checksum database", Fail, fmt.Sprintf("GET %s answered %d%s: the go command then connects to %s directly, which behind a firewall fails", path, status, bodyLine(h, body), name), fix)
	}
}
