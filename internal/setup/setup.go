// Package setup serves the pages that tell a person, a script or a tool
// how to use this modgate server: GET / (what the server is), /setup (the
// client settings to copy, for every shell and CI system), /setup.sh (a
// script applying them) and /setup.json (the server's settings a client
// needs, for `modgate env` and `modgate doctor`). None of them needs a
// token, and none shows anything secret.
package setup

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Paths are the paths Handler serves; it answers 404 for any other.
var Paths = []string{"/", "/setup", "/setup.sh", "/setup.json"}

// Config is what the pages say about the server.
type Config struct {
	Private   string // --private patterns (GOPRIVATE syntax)
	NoSumDB   string // --nosumdb patterns
	SumDB     string // --sumdb (GOSUMDB syntax; "" is the default, "off")
	Tokens    bool   // whether downloads need a token (--tokens)
	Anonymous string // --anonymous patterns, downloadable without a token
	Version   string // modgate's version
}

// Info is the body of GET /setup.json.
type Info struct {
	Modgate   bool   `json:"modgate"`
	Version   string `json:"version"`
	URL       string `json:"url"`
	URLError  string `json:"url_error,omitempty"`
	Private   string `json:"private"`
	NoSumDB   string `json:"nosumdb"`
	SumDB     string `json:"sumdb"`
	Tokens    bool   `json:"tokens"`
	Anonymous string `json:"anonymous"`
}

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// Handler serves Paths for GET and HEAD (405 otherwise).
func Handler(cfg Config) http.Handler {
	return &handler{cfg: cfg}
}

type handler struct{ cfg Config }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/", "/setup", "/setup.sh", "/setup.json":
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "modgate: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	// The answers depend on how the client reached the server.
	hd.Set("Vary", "Host, X-Forwarded-Proto")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	info := h.info(r)
	switch r.URL.Path {
	case "/setup.json":
		hd.Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(info)
	case "/setup.sh":
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(script(info))
	default:
		name := "index.html"
		if r.URL.Path == "/setup" {
			name = "setup.html"
		}
		var b bytes.Buffer
		if err := templates.ExecuteTemplate(&b, name, page(info)); err != nil {
			http.Error(w, "modgate: cannot render the page", http.StatusInternalServerError)
			return
		}
		hd.Set("Content-Type", "text/html; charset=utf-8")
		// No scripts, no outside resources: the inline style alone.
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		w.Write(b.Bytes())
	}
}

func (h *handler) info(r *http.Request) Info {
	in := Info{
		Modgate:   true,
		Version:   h.cfg.Version,
		Private:   h.cfg.Private,
		NoSumDB:   h.cfg.NoSumDB,
		SumDB:     SumDBName(h.cfg.SumDB),
		Tokens:    h.cfg.Tokens,
		Anonymous: h.cfg.Anonymous,
	}
	if host, ok := validHost(r.Host); ok {
		in.URL = scheme(r) + "://" + host
	} else {
		in.URLError = "the request's Host header is not a host name or IP address with an optional port; use this server's name or address in its place"
	}
	return in
}

// SumDBName is the name of the checksum database in a GOSUMDB-syntax
// setting, "off", or the go command's default for "": never the key nor
// the URL, which may carry credentials.
func SumDBName(v string) string {
	f := strings.Fields(v)
	if len(f) == 0 {
		return "sum.golang.org"
	}
	name, _, _ := strings.Cut(f[0], "+")
	return name
}

// scheme is the scheme the client used: https over TLS, else what a
// reverse proxy in front says in X-Forwarded-Proto, when that is one of
// the two, else http.
func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	switch p := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto"))); p {
	case "http", "https":
		return p
	}
	return "http"
}

// validHost accepts a Host header that is a DNS name, an IPv4 address or
// a bracketed IPv6 address, each with an optional port, and nothing else:
// it ends up in shell scripts and pages.
func validHost(h string) (string, bool) {
	if h == "" || len(h) > 261 {
		return "", false
	}
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", false
		}
		name, port = h[1:end], h[end+1:]
		a, err := netip.ParseAddr(name)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		if port != "" {
			if port[0] != ':' {
				return "", false
			}
			port = port[1:]
			if !validPort(port) {
				return "", false
			}
		}
		return h, true
	}
	if strings.Contains(h, ":") {
		var err error
		name, port, err = net.SplitHostPort(h)
		if err != nil || !validPort(port) {
			return "", false
		}
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return h, !strings.Contains(name, ":") // IPv6 only in brackets
	}
	return h, validName(name)
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 || strings.Trim(p, "0123456789") != "" {
		return false
	}
	n, _ := strconv.Atoi(p)
	return n > 0 && n <= 65535
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
