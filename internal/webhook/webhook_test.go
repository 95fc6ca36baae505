package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/modgate/modgate/internal/testenv"
)

const secret = "wh-s3cret-value"

// recorder is a refresh function that keeps the events it was given.
type recorder struct {
	mu     sync.Mutex
	events []Event
	err    error
}

func (r *recorder) refresh(ctx context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return r.err
}

func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func serve(t *testing.T, secret string, rec *recorder) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler(secret, rec.refresh, testenv.Logger(t, "webhook")))
	t.Cleanup(srv.Close)
	return srv
}

func hmacHex(key string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// The headers each server family sends, signed with key.
func githubHeaders(event, key string, body []byte) http.Header {
	return http.Header{
		"Content-Type":        {"application/json"},
		"User-Agent":          {"GitHub-Hookshot/a1b2c3d"},
		"X-Github-Event":      {event},
		"X-Github-Delivery":   {"72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		"X-Github-Hook-Id":    {"109948940"},
		"X-Hub-Signature":     {"sha1=" + strings.Repeat("0", 40)}, // not checked: sha1
		"X-Hub-Signature-256": {"sha256=" + hmacHex(key, body)},
	}
}

func giteaHeaders(event, key string, body []byte) http.Header {
	sig := hmacHex(key, body)
	return http.Header{
		"Content-Type":        {"application/json"},
		"X-Github-Event":      {event},
		"X-Github-Delivery":   {"f6266f16-1bf3-46a5-9ea4-602e06ead473"},
		"X-Gogs-Event":        {event},
		"X-Gogs-Signature":    {sig},
		"X-Gitea-Event":       {event},
		"X-Gitea-Event-Type":  {event},
		"X-Gitea-Delivery":    {"f6266f16-1bf3-46a5-9ea4-602e06ead473"},
		"X-Gitea-Signature":   {sig},
		"X-Hub-Signature-256": {"sha256=" + sig},
	}
}

func forgejoHeaders(event, key string, body []byte) http.Header {
	h := giteaHeaders(event, key, body)
	h.Set("X-Forgejo-Event", event)
	h.Set("X-Forgejo-Signature", hmacHex(key, body))
	return h
}

func gitlabHeaders(event, token string, _ []byte) http.Header {
	return http.Header{
		"Content-Type":        {"application/json"},
		"User-Agent":          {"GitLab/18.2.0"},
		"X-Gitlab-Event":      {event},
		"X-Gitlab-Event-Uuid": {"b2a4a1a4-0b4e-4d76-a3d6-0c9a3f1f7d31"},
		"X-Gitlab-Instance":   {"https://gitlab.corp.example"},
		"X-Gitlab-Token":      {token},
	}
}

func post(t *testing.T, srv *httptest.Server, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/git", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.HasPrefix(text, "modgate: ") || strings.Count(text, "\n") != 1 || !strings.HasSuffix(text, "\n") {
		t.Errorf("answer %q is not one line", text)
	}
	if strings.Contains(text, secret) {
		t.Errorf("answer %q shows the secret", text)
	}
	return resp.StatusCode, strings.TrimSpace(text)
}

func testPayload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEvents(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, secret, rec)
	gitlabURLs := []string{
		"https://gitlab.corp.example/finance/go/billing.git",
		"git@gitlab.corp.example:finance/go/billing.git",
		"https://gitlab.corp.example/finance/go/billing",
	}
	giteaURLs := []string{
		"https://gitea.corp.example/platform/kit.git",
		"ssh://git@gitea.corp.example:2222/platform/kit.git",
		"https://gitea.corp.example/platform/kit",
	}
	type headers func(event, key string, body []byte) http.Header
	for _, tc := range []struct {
		name    string
		file    string
		headers headers
		event   string
		want    Event
	}{
		{"github push", "github_push.json", githubHeaders, "push", Event{Kind: KindPush, Ref: "refs/heads/main", Forge: "github", RepoURLs: []string{
			"https://github.com/acme/widgets.git", "git@github.com:acme/widgets.git", "https://github.com/acme/widgets"}}},
		{"github create tag", "github_create_tag.json", githubHeaders, "create", Event{Kind: KindTag, Ref: "refs/tags/v1.4.0", Forge: "github", RepoURLs: []string{
			"https://github.example.com/acme/widgets.git", "git@github.example.com:acme/widgets.git", "https://github.example.com/acme/widgets"}}},
		{"gitea push of a tag", "gitea_push_tag.json", giteaHeaders, "push", Event{Kind: KindTag, Ref: "refs/tags/v0.3.1", Forge: "gitea", RepoURLs: giteaURLs}},
		{"gitea create", "gitea_create.json", giteaHeaders, "create", Event{Kind: KindTag, Ref: "refs/tags/v0.3.1", Forge: "gitea", RepoURLs: giteaURLs}},
		{"forgejo push", "gitea_push_tag.json", forgejoHeaders, "push", Event{Kind: KindTag, Ref: "refs/tags/v0.3.1", Forge: "gitea", RepoURLs: giteaURLs}},
		{"gitlab push", "gitlab_push.json", gitlabHeaders, "Push Hook", Event{Kind: KindPush, Ref: "refs/heads/develop", Forge: "gitlab", RepoURLs: gitlabURLs}},
		{"gitlab tag push", "gitlab_tag_push.json", gitlabHeaders, "Tag Push Hook", Event{Kind: KindTag, Ref: "refs/tags/v2.7.0", Forge: "gitlab", RepoURLs: gitlabURLs}},
		{"gitlab system push", "gitlab_push.json", gitlabHeaders, "System Hook", Event{Kind: KindPush, Ref: "refs/heads/develop", Forge: "gitlab", RepoURLs: gitlabURLs}},
		{"gitlab system tag push", "gitlab_tag_push.json", gitlabHeaders, "System Hook", Event{Kind: KindTag, Ref: "refs/tags/v2.7.0", Forge: "gitlab", RepoURLs: gitlabURLs}},
		{"gitlab repository update", "gitlab_system_repository_update.json", gitlabHeaders, "System Hook", Event{Kind: KindTag, Ref: "", Forge: "gitlab", RepoURLs: gitlabURLs}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := testPayload(t, tc.file)
			key := secret
			status, text := post(t, srv, tc.headers(tc.event, key, body), body)
			if status != http.StatusOK || !strings.Contains(text, "refreshed") {
				t.Fatalf("answer %d %q", status, text)
			}
			got := rec.take()
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Fatalf("events %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestIgnoredEvents(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, secret, rec)
	body := testPayload(t, "github_ping.json")
	if status, text := post(t, srv, githubHeaders("ping", secret, body), body); status != http.StatusOK || text != "modgate: pong" {
		t.Errorf("ping: %d %q", status, text)
	}
	for _, h := range []http.Header{
		githubHeaders("issues", secret, body),
		githubHeaders("delete", secret, body),
		giteaHeaders("pull_request", secret, body),
		gitlabHeaders("Merge Request Hook", secret, body),
		gitlabHeaders("System Hook", secret, []byte(`{"event_name":"user_create","name":"x"}`)),
	} {
		b := body
		if h.Get("X-Gitlab-Event") == "System Hook" {
			b = []byte(`{"event_name":"user_create","name":"x"}`)
		}
		if status, text := post(t, srv, h, b); status != http.StatusAccepted || !strings.Contains(text, "ignored") {
			t.Errorf("%v: %d %q, want 202 ignored", h, status, text)
		}
	}
	// A GitHub create of a repository (old payloads) is not a ref.
	create := []byte(`{"ref":null,"ref_type":"repository","repository":{"clone_url":"https://github.com/a/b.git"}}`)
	if status, _ := post(t, srv, githubHeaders("create", secret, create), create); status != http.StatusAccepted {
		t.Errorf("create repository: %d, want 202", status)
	}
	if ev := rec.take(); len(ev) != 0 {
		t.Errorf("refresh called for %+v", ev)
	}
}

func TestAuthentication(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, secret, rec)
	body := testPayload(t, "github_push.json")
	gl := testPayload(t, "gitlab_push.json")
	for _, tc := range []struct {
		name   string
		h      http.Header
		body   []byte
		status int
	}{
		{"no signature", http.Header{"X-Github-Event": {"push"}, "Content-Type": {"application/json"}}, body, http.StatusUnauthorized},
		{"empty signature", http.Header{"X-Github-Event": {"push"}, "X-Hub-Signature-256": {""}}, body, http.StatusUnauthorized},
		{"sha1 only", http.Header{"X-Github-Event": {"push"}, "X-Hub-Signature": {"sha1=" + strings.Repeat("a", 40)}}, body, http.StatusUnauthorized},
		{"github wrong key", githubHeaders("push", "wrong", body), body, http.StatusForbidden},
		{"github other body", githubHeaders("push", secret, []byte("{}")), body, http.StatusForbidden},
		{"github no prefix", http.Header{"X-Github-Event": {"push"}, "X-Hub-Signature-256": {hmacHex(secret, body)}}, body, http.StatusForbidden},
		{"github not hex", http.Header{"X-Github-Event": {"push"}, "X-Hub-Signature-256": {"sha256=zz"}}, body, http.StatusForbidden},
		{"gitea wrong key", giteaHeaders("push", "wrong", body), body, http.StatusForbidden},
		{"gitea one header wrong", func() http.Header {
			h := giteaHeaders("push", secret, body)
			h.Set("X-Hub-Signature-256", "sha256="+hmacHex("wrong", body))
			return h
		}(), body, http.StatusForbidden},
		{"gitlab wrong token", gitlabHeaders("Push Hook", "wrong", nil), gl, http.StatusForbidden},
		{"gitlab token prefix", gitlabHeaders("Push Hook", secret[:5], nil), gl, http.StatusForbidden},
		{"gitlab token longer", gitlabHeaders("Push Hook", secret+"x", nil), gl, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, text := post(t, srv, tc.h, tc.body)
			if status != tc.status {
				t.Errorf("status %d (%q), want %d", status, text, tc.status)
			}
		})
	}
	if ev := rec.take(); len(ev) != 0 {
		t.Errorf("refresh called for %+v", ev)
	}

	// Without a secret nothing is accepted, even a request "signed" with
	// the empty key.
	off := serve(t, "", rec)
	if status, _ := post(t, off, githubHeaders("push", "", body), body); status != http.StatusForbidden {
		t.Errorf("no secret: %d, want 403", status)
	}
	if ev := rec.take(); len(ev) != 0 {
		t.Errorf("refresh called for %+v", ev)
	}
}

func TestRequestShape(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, secret, rec)

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/webhooks/git", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}

	// Too large, announced or not.
	big := bytes.Repeat([]byte(" "), MaxBody+1)
	if status, _ := post(t, srv, githubHeaders("push", secret, big), big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: %d", status)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/webhooks/git", io.MultiReader(bytes.NewReader(big)))
	req.Header = githubHeaders("push", secret, big)
	req.ContentLength = -1 // chunked
	if status, _ := do(t, req); status != http.StatusRequestEntityTooLarge {
		t.Errorf("large chunked body: %d", status)
	}
	// Exactly the limit is read (and is not JSON).
	limit := bytes.Repeat([]byte(" "), MaxBody)
	if status, _ := post(t, srv, githubHeaders("push", secret, limit), limit); status != http.StatusBadRequest {
		t.Errorf("body at the limit: %d, want 400", status)
	}

	for name, body := range map[string]string{
		"not json":      `ref=refs/heads/main`,
		"no repository": `{"ref":"refs/heads/main"}`,
		"no ref":        `{"repository":{"clone_url":"https://git.corp.example/a.git"}}`,
		"bad ref":       `{"ref":"refs/heads/a..b","repository":{"clone_url":"https://git.corp.example/a.git"}}`,
		"short ref":     `{"ref":"main","repository":{"clone_url":"https://git.corp.example/a.git"}}`,
		"only odd URLs": `{"ref":"refs/heads/main","repository":{"clone_url":"file:///srv/a.git","ssh_url":"not a url","html_url":"javascript:alert(1)"}}`,
		"wrong types":   `{"ref":1,"repository":{"clone_url":["x"]}}`,
	} {
		b := []byte(body)
		if status, text := post(t, srv, githubHeaders("push", secret, b), b); status != http.StatusBadRequest {
			t.Errorf("%s: %d %q, want 400", name, status, text)
		}
	}
	if status, _ := post(t, srv, http.Header{"X-Hub-Signature-256": {"sha256=" + hmacHex(secret, []byte("{}"))}}, []byte("{}")); status != http.StatusBadRequest {
		t.Errorf("signed, without an event header: %d, want 400", status)
	}
	if ev := rec.take(); len(ev) != 0 {
		t.Errorf("refresh called for %+v", ev)
	}
}

func TestFormPayload(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, secret, rec)
	form := []byte(url.Values{"payload": {string(testPayload(t, "github_push.json"))}}.Encode())
	h := githubHeaders("push", secret, form)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, text := post(t, srv, h, form); status != http.StatusOK {
		t.Fatalf("%d %q", status, text)
	}
	if ev := rec.take(); len(ev) != 1 || ev[0].Ref != "refs/heads/main" {
		t.Errorf("events %+v", ev)
	}
}

func TestCredentialsStripped(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, secret, rec)
	body := []byte(`{"ref":"refs/heads/main","repository":{
		"clone_url":"https://x-access-token:ghs_tok3n@github.com/acme/w.git",
		"ssh_url":"ssh://git:pw0rd@git.corp.example:2222/acme/w.git",
		"html_url":"https://ghp_t0ken@github.com/acme/w"}}`)
	if status, text := post(t, srv, githubHeaders("push", secret, body), body); status != http.StatusOK {
		t.Fatalf("%d %q", status, text)
	}
	ev := rec.take()
	want := []string{"https://github.com/acme/w.git", "ssh://git@git.corp.example:2222/acme/w.git", "https://github.com/acme/w"}
	if len(ev) != 1 || !reflect.DeepEqual(ev[0].RepoURLs, want) {
		t.Errorf("events %+v, want URLs %q", ev, want)
	}
}

func TestRefreshError(t *testing.T) {
	rec := &recorder{err: errors.New("git fetch https://bot:hunter2@git.corp.example/a.git failed:\nfatal: unable to access")}
	srv := serve(t, secret, rec)
	body := testPayload(t, "gitlab_push.json")
	status, text := post(t, srv, gitlabHeaders("Push Hook", secret, nil), body)
	if status != http.StatusBadGateway || !strings.Contains(text, "refreshing https://gitlab.corp.example/finance/go/billing.git failed") ||
		strings.Contains(text, "hunter2") || !strings.Contains(text, "unable to access") {
		t.Errorf("answer %d %q", status, text)
	}
}

func FuzzHandler(f *testing.F) {
	for _, name := range []string{"github_push.json", "gitea_create.json", "gitlab_system_repository_update.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add("push", string(b))
		f.Add("System Hook", string(b))
	}
	f.Add("create", `{"ref":"v1","ref_type":"tag","repository":{"clone_url":"https://u:p@h/x"}}`)
	f.Fuzz(func(t *testing.T, event, body string) {
		var got []Event
		h := Handler(secret, func(ctx context.Context, ev Event) error { got = append(got, ev); return nil }, nil)
		for _, headers := range []http.Header{
			githubHeaders(event, secret, []byte(body)),
			giteaHeaders(event, secret, []byte(body)),
			gitlabHeaders(event, secret, nil),
		} {
			req := httptest.NewRequest(http.MethodPost, "/webhooks/git", strings.NewReader(body))
			for k, v := range headers {
				if strings.ContainsAny(v[0], "\r\n\x00") {
					return // not a header a client can send
				}
				req.Header[k] = v
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			switch w.Code {
			case http.StatusOK, http.StatusAccepted, http.StatusBadRequest:
			default:
				t.Fatalf("status %d: %q", w.Code, w.Body.String())
			}
			if strings.Count(w.Body.String(), "\n") != 1 {
				t.Fatalf("answer %q", w.Body.String())
			}
		}
		for _, ev := range got {
			if ev.Kind != KindPush && ev.Kind != KindTag || len(ev.RepoURLs) == 0 || len(ev.RepoURLs) > maxURLs || ev.Ref != "" && !validRef(ev.Ref) {
				t.Fatalf("event %+v", ev)
			}
			for _, u := range ev.RepoURLs {
				if testenv.ShownUserinfo(u) != "" && !strings.HasPrefix(u, "ssh") {
					t.Fatalf("URL %q keeps user information", u)
				}
				if p, err := url.Parse(u); err == nil && p.User != nil {
					if _, has := p.User.Password(); has {
						t.Fatalf("URL %q keeps a password", u)
					}
				}
			}
		}
	})
}
