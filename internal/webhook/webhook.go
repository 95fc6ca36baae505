// Package webhook receives the push and tag notifications git servers
// send (POST /webhooks/git), checks that they come from a server that
// knows the shared secret, and turns them into an Event naming the
// repository, so that modgate refreshes its mirror and cached lists at
// once instead of waiting for a TTL.
//
// It accepts the requests of the three server families in use, each with
// its own way of proving the secret:
//
//   - GitLab: X-Gitlab-Event "Push Hook", "Tag Push Hook" or "System Hook",
//     and X-Gitlab-Token, the secret itself;
//   - Gitea and Forgejo: X-Gitea-Event (X-Forgejo-Event) "push" or "create",
//     and X-Gitea-Signature (X-Forgejo-Signature), the hex HMAC-SHA256 of
//     the body;
//   - GitHub (and GitHub Enterprise): X-GitHub-Event "push", "create" or
//     "ping", and X-Hub-Signature-256, "sha256=" and the hex HMAC-SHA256.
//
// Every signature header present must verify; at least one must be.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/modgate/modgate/internal/redact"
)

// Event is a notification that a repository changed.
type Event struct {
	// Kind is KindPush (branches) or KindTag.
	Kind string
	// RepoURLs are the repository's URLs as the payload names them (clone
	// over https and ssh, web page), credentials removed. Compare them
	// with gitmirror.RepoKey.
	RepoURLs []string
	// Ref is the full name of the ref that changed ("refs/heads/main",
	// "refs/tags/v1.2.3"); "" when one event names several.
	Ref string
	// Forge is the kind of server that sent it: "gitlab", "gitea"
	// (Forgejo included) or "github".
	Forge string
}

// Event kinds.
const (
	KindPush = "push"
	KindTag  = "tag"
)

// MaxBody is the largest request body read: a push of many commits is a
// few hundred KiB.
const MaxBody = 4 << 20

// Handler serves POST /webhooks/git. An event with a valid signature is
// passed to refresh, with the request's context; its error becomes a 502.
// Answers are one text/plain line: 200 done (or "pong" to GitHub's
// ping), 202 an event of no interest, 400 a payload without a repository
// or ref, 401 no signature, 403 a wrong one, 405 not a POST, 413 a body
// over MaxBody. An empty secret refuses every request.
func Handler(secret string, refresh func(ctx context.Context, ev Event) error, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &handler{secret: []byte(secret), refresh: refresh, log: log}
}

type handler struct {
	secret  []byte
	refresh func(context.Context, Event) error
	log     *slog.Logger
}

// signatureHeaders are the headers that prove the secret, and how.
var signatureHeaders = []struct {
	name   string
	verify func(secret, body []byte, value string) bool
}{
	{"X-Hub-Signature-256", func(secret, body []byte, v string) bool {
		hexSum, ok := strings.CutPrefix(v, "sha256=")
		return ok && hmacMatches(secret, body, hexSum)
	}},
	{"X-Gitea-Signature", func(secret, body []byte, v string) bool { return hmacMatches(secret, body, v) }},
	{"X-Forgejo-Signature", func(secret, body []byte, v string) bool { return hmacMatches(secret, body, v) }},
	{"X-Gitlab-Token", func(secret, _ []byte, v string) bool {
		// Comparing digests keeps the comparison's time independent of
		// both the content and the length of the secret.
		a, b := sha256.Sum256([]byte(v)), sha256.Sum256(secret)
		return subtle.ConstantTimeCompare(a[:], b[:]) == 1
	}},
}

func hmacMatches(secret, body []byte, hexSum string) bool {
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, "webhooks are POST requests")
		return
	}
	forge, event := eventOf(r.Header)
	log := h.log.With("remote", r.RemoteAddr, "forge", forge, "event", redact.Line(event, 64), "delivery", deliveryOf(r.Header))
	if len(h.secret) == 0 {
		log.Warn("webhook refused: no webhook secret is configured")
		reply(w, http.StatusForbidden, "webhooks are not enabled (no secret configured)")
		return
	}
	present := 0
	for _, s := range signatureHeaders {
		if r.Header.Get(s.name) != "" {
			present++
		}
	}
	if present == 0 {
		log.Warn("webhook refused: no signature")
		reply(w, http.StatusUnauthorized, "webhook without a signature (X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token)")
		return
	}
	if r.ContentLength > MaxBody {
		reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("webhook body over %d bytes", MaxBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("webhook body over %d bytes", MaxBody))
			return
		}
		reply(w, http.StatusBadRequest, "reading the webhook body failed")
		return
	}
	for _, s := range signatureHeaders {
		if v := r.Header.Get(s.name); v != "" && !s.verify(h.secret, body, strings.TrimSpace(v)) {
			log.Warn("webhook refused: wrong signature", "header", s.name)
			reply(w, http.StatusForbidden, "webhook signature ("+s.name+") does not match the configured secret")
			return
		}
	}

	if forge == "" {
		reply(w, http.StatusBadRequest, "no X-Gitlab-Event, X-Gitea-Event or X-GitHub-Event header")
		return
	}
	payload, err := payloadOf(r.Header.Get("Content-Type"), body)
	if err != nil {
		reply(w, http.StatusBadRequest, "webhook payload: "+err.Error())
		return
	}
	ev, status, msg := parse(forge, event, payload)
	if status != 0 {
		if status == http.StatusBadRequest {
			log.Warn("webhook refused", "reason", msg)
		} else {
			log.Info("webhook ignored", "reason", msg)
		}
		reply(w, status, msg)
		return
	}
	log = log.With("kind", ev.Kind, "ref", ev.Ref, "repositories", ev.RepoURLs)
	if err := h.refresh(r.Context(), ev); err != nil {
		log.Error("webhook refresh failed", "error", err.Error())
		reply(w, http.StatusBadGateway, "refreshing "+ev.RepoURLs[0]+" failed: "+err.Error())
		return
	}
	log.Info("webhook refreshed repository")
	what := ev.Ref
	if what == "" {
		what = "several refs"
	}
	reply(w, http.StatusOK, fmt.Sprintf("refreshed %s after a %s of %s", ev.RepoURLs[0], ev.Kind, what))
}

// eventOf names the sender and its event. Gitea and Forgejo also send
// X-GitHub-Event (and X-Gogs-Event), so their own header is looked at
// first.
func eventOf(h http.Header) (forge, event string) {
	switch {
	case h.Get("X-Gitea-Event") != "":
		return "gitea", h.Get("X-Gitea-Event")
	case h.Get("X-Forgejo-Event") != "":
		return "gitea", h.Get("X-Forgejo-Event")
	case h.Get("X-Gitlab-Event") != "":
		return "gitlab", h.Get("X-Gitlab-Event")
	case h.Get("X-GitHub-Event") != "":
		return "github", h.Get("X-GitHub-Event")
	}
	return "", ""
}

func deliveryOf(h http.Header) string {
	for _, name := range []string{"X-GitHub-Delivery", "X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"} {
		if v := h.Get(name); v != "" {
			return redact.Line(v, 64)
		}
	}
	return ""
}

// payloadOf returns the JSON of the body: the body itself, or the
// "payload" field of a form (GitHub's and Gitea's other content type).
func payloadOf(contentType string, body []byte) ([]byte, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		return nil, errors.New("a form without a payload field")
	}
	return []byte(form.Get("payload")), nil
}

// repository is every URL field the three families put in "repository"
// and, for GitLab, "project".
type repository struct {
	CloneURL   string `json:"clone_url"`    // GitHub, Gitea
	SSHURL     string `json:"ssh_url"`      // GitHub, Gitea; GitLab project (deprecated)
	HTMLURL    string `json:"html_url"`     // GitHub, Gitea
	GitHTTPURL string `json:"git_http_url"` // GitLab
	GitSSHURL  string `json:"git_ssh_url"`  // GitLab
	WebURL     string `json:"web_url"`      // GitLab project
	HTTPURL    string `json:"http_url"`     // GitLab project (deprecated)
	URL        string `json:"url"`          // GitLab repository: the ssh URL; elsewhere an API URL, not used
	Homepage   string `json:"homepage"`     // GitLab
}

type payload struct {
	Ref        string      `json:"ref"`
	RefType    string      `json:"ref_type"`    // GitHub, Gitea "create"
	EventName  string      `json:"event_name"`  // GitLab
	ObjectKind string      `json:"object_kind"` // GitLab
	Refs       []string    `json:"refs"`        // GitLab repository_update
	Repository *repository `json:"repository"`
	Project    *repository `json:"project"`
}

// parse turns a verified payload into an Event, or returns the status
// and line to answer instead.
func parse(forge, event string, data []byte) (Event, int, string) {
	var p payload
	if err := json.Unmarshal(data, &p); err != nil {
		return Event{}, http.StatusBadRequest, "webhook payload is not the JSON expected"
	}
	ev := Event{Forge: forge}
	ignored := func() (Event, int, string) {
		return Event{}, http.StatusAccepted, "ignored: " + forge + " event " + fmt.Sprintf("%q", redact.Line(event, 64)) + " does not change a repository"
	}
	switch forge {
	case "github", "gitea":
		switch event {
		case "ping":
			if forge == "github" {
				return Event{}, http.StatusOK, "pong"
			}
			return ignored()
		case "push":
			ev.Ref = p.Ref
		case "create":
			switch p.RefType {
			case "tag":
				ev.Ref = "refs/tags/" + p.Ref
			case "branch":
				ev.Ref = "refs/heads/" + p.Ref
			default:
				return ignored()
			}
		default:
			return ignored()
		}
		if p.Repository != nil {
			ev.RepoURLs = cleanURLs(p.Repository.CloneURL, p.Repository.SSHURL, p.Repository.HTMLURL)
		}
	case "gitlab":
		kind := ""
		switch event {
		case "Push Hook", "Tag Push Hook":
			kind = "push"
		case "System Hook":
			kind = cmpOr(p.EventName, p.ObjectKind)
		default:
			return ignored()
		}
		switch kind {
		case "push", "tag_push":
			ev.Ref = p.Ref
		case "repository_update":
			// One system event for a push of several refs.
			var tag bool
			for _, ref := range p.Refs {
				tag = tag || strings.HasPrefix(ref, "refs/tags/")
			}
			if len(p.Refs) == 1 {
				ev.Ref = p.Refs[0]
			}
			ev.Kind = KindPush
			if tag {
				ev.Kind = KindTag
			}
		default:
			return ignored()
		}
		var urls []string
		for _, r := range []*repository{p.Project, p.Repository} {
			if r != nil {
				urls = append(urls, r.GitHTTPURL, r.GitSSHURL, r.WebURL, r.HTTPURL, r.SSHURL, r.URL, r.Homepage)
			}
		}
		ev.RepoURLs = cleanURLs(urls...)
	}
	if ev.Ref != "" || ev.Kind == "" {
		if !validRef(ev.Ref) {
			return Event{}, http.StatusBadRequest, "webhook payload names no valid ref"
		}
		ev.Kind = KindPush
		if strings.HasPrefix(ev.Ref, "refs/tags/") {
			ev.Kind = KindTag
		}
	}
	if len(ev.RepoURLs) == 0 {
		return Event{}, http.StatusBadRequest, "webhook payload names no repository URL"
	}
	return ev, 0, ""
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// validRef accepts a full ref name of reasonable length, without the
// characters git forbids in one.
func validRef(ref string) bool {
	if !strings.HasPrefix(ref, "refs/") || len(ref) > 1024 || strings.Contains(ref, "..") || strings.HasSuffix(ref, "/") {
		return false
	}
	for _, r := range ref {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	return true
}

// maxURLs bounds the URLs taken from one payload (they are at most
// seven in any real one).
const maxURLs = 16

// cleanURLs keeps the usable URLs among urls, without credentials, each
// once, in order.
func cleanURLs(urls ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, raw := range urls {
		u, ok := cleanURL(raw)
		if !ok || seen[u] || len(out) == maxURLs {
			continue
		}
		seen[u] = true
		out = append(out, u)
	}
	return out
}

// cleanURL returns raw without credentials: no user information at all
// for http(s) (a token is often given as the user name), the user name
// alone for ssh ("git@"). The scp-like form "git@host:path" has no
// password to remove. Anything else, or anything odd, is dropped.
func cleanURL(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 2048 || strings.ContainsFunc(raw, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }) {
		return "", false
	}
	if !strings.Contains(raw, "://") {
		// Only the form servers write, "user@host:path".
		user, rest, _ := strings.Cut(raw, "@")
		host, path, _ := strings.Cut(rest, ":")
		if user == "" || strings.ContainsAny(user, ":/") || !hostName(host) || path == "" {
			return "", false
		}
		return raw, true
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		u.User = nil
	case "ssh", "git+ssh":
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
	default:
		return "", false
	}
	return u.String(), true
}

func hostName(s string) bool {
	if s == "" || s[0] == '-' || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// reply writes one text/plain line.
func reply(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	io.WriteString(w, "modgate: "+redact.Line(msg, 600)+"\n")
}
