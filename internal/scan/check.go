package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/modgate/modgate/internal/policy"
	"github.com/modgate/modgate/internal/redact"
)

// Checker returns the policy's verdict on each module, in order.
type Checker interface {
	Check(ctx context.Context, mods []Module) ([]policy.CheckResult, error)
}

// Local applies a policy file in this process. The version times and
// retractions are the go command's (Load with Retracted when the policy
// blocks retracted versions).
type Local struct {
	Engine *policy.Engine
}

func (l Local) Check(ctx context.Context, mods []Module) ([]policy.CheckResult, error) {
	out := make([]policy.CheckResult, 0, len(mods))
	for _, m := range mods {
		v := l.Engine.Decide(m.Path, m.Version, m.Time)
		r := policy.CheckResult{Path: m.Path, Version: m.Version, Allowed: v.Allowed, Rule: v.Rule, Reason: v.Reason}
		if r.Allowed && m.Time.IsZero() && l.Engine.MinAgeApplies(m.Path) {
			r.Notes = append(r.Notes, "min-age not checked: the go command reports no time for this version")
		}
		if r.Allowed && m.Retracted != nil && l.Engine.BlocksRetracted() {
			r.Allowed, r.Rule, r.Reason = false, "retracted", "retracted by the module's author"
			if why := strings.Join(m.Retracted, "; "); why != "" {
				r.Reason += ": " + why
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// maxCheckResponse bounds the server's answer: MaxCheckModules results
// of long reasons fit.
const maxCheckResponse = 64 << 20

// Remote asks a modgate server (POST /policy/check).
type Remote struct {
	// URL is the server's base URL.
	URL string
	// Token, when set, is sent as a bearer token, to URL only.
	Token  string
	Client *http.Client
}

// NetworkError is a failure to get an answer from the server.
type NetworkError struct{ Err error }

func (e *NetworkError) Error() string { return e.Err.Error() }
func (e *NetworkError) Unwrap() error { return e.Err }

// CheckURL validates a server URL for Remote: http or https, a host, no
// credentials in it; a token only over https or to a loopback address.
func CheckURL(raw string, token bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %s: want an http or https URL", redact.URL(raw))
	}
	if u.User != nil {
		return nil, fmt.Errorf("--server %s: a URL with a user name or password; give the token with --token-file or MODGATE_TOKEN", redact.URL(raw))
	}
	if token && u.Scheme != "https" {
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("--server %s: refusing to send a token over plain http", redact.URL(raw))
		}
	}
	return u, nil
}

func (r Remote) Check(ctx context.Context, mods []Module) ([]policy.CheckResult, error) {
	u, err := CheckURL(r.URL, r.Token != "")
	if err != nil {
		return nil, err
	}
	endpoint := strings.TrimSuffix(u.String(), "/") + "/policy/check"
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	out := make([]policy.CheckResult, 0, len(mods))
	for len(mods) > 0 {
		n := min(len(mods), policy.MaxCheckModules)
		res, err := r.post(ctx, client, endpoint, mods[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
		mods = mods[n:]
	}
	return out, nil
}

func (r Remote) post(ctx context.Context, client *http.Client, endpoint string, mods []Module) ([]policy.CheckResult, error) {
	req := policy.CheckRequest{Modules: make([]policy.CheckModule, len(mods))}
	for i, m := range mods {
		req.Modules[i] = policy.CheckModule{Path: m.Path, Version: m.Version}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if r.Token != "" {
		hreq.Header.Set("Authorization", "Bearer "+r.Token)
	}
	resp, err := client.Do(hreq)
	if err != nil {
		// url.Error quotes the URL: redact it in case the user put a
		// secret in a query.
		return nil, &NetworkError{fmt.Errorf("%s: %v", redact.URL(endpoint), unwrapURLError(err))}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckResponse+1))
	if err != nil {
		return nil, &NetworkError{fmt.Errorf("%s: reading the answer: %v", redact.URL(endpoint), err)}
	}
	if len(data) > maxCheckResponse {
		return nil, &NetworkError{fmt.Errorf("%s: answer larger than %d bytes", redact.URL(endpoint), maxCheckResponse)}
	}
	if resp.StatusCode != http.StatusOK {
		line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
		if len(line) > 300 {
			line = line[:300] + "..."
		}
		hint := ""
		switch resp.StatusCode {
		case http.StatusNotFound:
			hint = " (is it a modgate started with --policy?)"
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (give a token with --token-file or MODGATE_TOKEN)"
		}
		return nil, &NetworkError{fmt.Errorf("%s: %s: %s%s", redact.URL(endpoint), resp.Status, redact.Text(line), hint)}
	}
	var cr policy.CheckResponse
	if err := json.Unmarshal(data, &cr); err != nil {
		return nil, &NetworkError{fmt.Errorf("%s: invalid answer: %v", redact.URL(endpoint), err)}
	}
	if len(cr.Results) != len(mods) {
		return nil, &NetworkError{fmt.Errorf("%s: %d results for %d modules", redact.URL(endpoint), len(cr.Results), len(mods))}
	}
	for i, res := range cr.Results {
		if res.Path != mods[i].Path || res.Version != mods[i].Version {
			return nil, &NetworkError{fmt.Errorf("%s: result %d is for %s@%s, not %s@%s", redact.URL(endpoint), i, res.Path, res.Version, mods[i].Path, mods[i].Version)}
		}
	}
	return cr.Results, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
