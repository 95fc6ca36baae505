package doctor

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// trust is the set of CAs the go command on this machine trusts.
type trust struct {
	pool  *x509.CertPool // nil: the system's
	check Check
	// where names the source of the pool, for fixes.
	where string
}

// loadTrust finds the CAs the go command would trust, reading SSL_CERT_FILE
// and SSL_CERT_DIR from env rather than the process (crypto/x509 reads them
// once per process, so a test could not change them): on Linux and the
// BSDs, crypto/x509 uses exactly those when set, in place of the system's
// default file and directories. Elsewhere (macOS, Windows) the platform
// verifier decides and the variables do not matter.
func loadTrust(getenv func(string) string) trust {
	file, dir := getenv("SSL_CERT_FILE"), getenv("SSL_CERT_DIR")
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" || runtime.GOOS == "ios" || file == "" && dir == "" {
		return trust{where: "the system store", check: Check{Name: "trusted CAs", Status: OK, Detail: "the system store (SSL_CERT_FILE, SSL_CERT_DIR unset)"}}
	}
	pool := x509.NewCertPool()
	var notes []string
	status := OK
	if file != "" {
		data, err := os.ReadFile(file)
		switch {
		case err != nil:
			status = Fail
			notes = append(notes, fmt.Sprintf("SSL_CERT_FILE=%s cannot be read (%v): Go then trusts no CA from it", file, err))
		case !pool.AppendCertsFromPEM(data):
			status = Fail
			notes = append(notes, fmt.Sprintf("SSL_CERT_FILE=%s holds no PEM certificate", file))
		default:
			notes = append(notes, "SSL_CERT_FILE="+file)
		}
	}
	if dir != "" {
		for _, d := range filepath.SplitList(dir) {
			entries, err := os.ReadDir(d)
			if err != nil {
				notes = append(notes, fmt.Sprintf("SSL_CERT_DIR entry %s unreadable: %v", d, err))
				continue
			}
			for _, e := range entries {
				if data, err := os.ReadFile(filepath.Join(d, e.Name())); err == nil {
					pool.AppendCertsFromPEM(data)
				}
			}
		}
		notes = append(notes, "SSL_CERT_DIR="+dir)
	}
	c := Check{Name: "trusted CAs", Status: status, Detail: strings.Join(notes, "; ") + " (in place of the system store)"}
	if status == Fail {
		c.Fix = "export SSL_CERT_FILE=/path/to/ca-bundle.pem (a PEM file holding your company's CA), or unset SSL_CERT_FILE to use the system store"
	}
	where := "SSL_CERT_FILE=" + file
	if file == "" {
		where = "SSL_CERT_DIR=" + dir
	}
	return trust{pool: pool, where: where, check: c}
}

// egressProxy returns the HTTP proxy the go command would go through to
// reach target, from HTTPS_PROXY/HTTP_PROXY/NO_PROXY in env, following the
// rules of Go's net/http: loopback addresses and localhost never go
// through a proxy; NO_PROXY is a comma list of "*", host names (matching
// the name and its subdomains, a leading "." only subdomains), IP
// addresses and CIDR ranges, each optionally with a port.
func egressProxy(getenv func(string) string, target *url.URL) (*url.URL, error) {
	get := func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return getenv(strings.ToLower(k))
	}
	raw := get("HTTP_PROXY")
	if target.Scheme == "https" {
		raw = get("HTTPS_PROXY")
	}
	if raw == "" {
		return nil, nil
	}
	host, port := target.Hostname(), target.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[target.Scheme]
	}
	if host == "localhost" {
		return nil, nil
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsLoopback() {
		return nil, nil
	}
	for entry := range strings.SplitSeq(get("NO_PROXY"), ",") {
		entry = strings.ToLower(strings.TrimSpace(entry))
		if entry == "" {
			continue
		}
		if entry == "*" {
			return nil, nil
		}
		if _, cidr, err := net.ParseCIDR(entry); err == nil {
			if ip != nil && cidr.Contains(ip) {
				return nil, nil
			}
			continue
		}
		name, p := entry, ""
		if h, pp, err := net.SplitHostPort(entry); err == nil {
			name, p = h, pp
		}
		if p != "" && p != port {
			continue
		}
		h := strings.ToLower(host)
		if e := net.ParseIP(name); e != nil {
			if ip != nil && e.Equal(ip) {
				return nil, nil
			}
			continue
		}
		if strings.HasPrefix(name, ".") {
			if strings.HasSuffix(h, name) {
				return nil, nil
			}
			continue
		}
		if h == strings.TrimPrefix(name, "*.") || strings.HasSuffix(h, "."+strings.TrimPrefix(name, "*.")) {
			return nil, nil
		}
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid proxy address in the environment")
	}
	return u, nil
}
