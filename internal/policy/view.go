package policy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/modgate/modgate/internal/goproxy"
	"github.com/modgate/modgate/internal/protocol"
	"github.com/modgate/modgate/internal/redact"
)

// The policy view (GET /admin/v1/policy) shows operators the policy in
// force and what it refused lately: the rules as the loaded file writes
// them, refusal counts by rule, and the last refusals. The counts and the
// refusals are this process's, since it started; with several replicas
// each has its own, and the audit log (decision=deny) has them all.

// MaxRecentRefusals is how many refusals the engine keeps for the view.
const MaxRecentRefusals = 100

// View is the answer of GET /admin/v1/policy.
type View struct {
	// File is the policy file (--policy) and DryRun whether it only
	// records what it would deny (--policy-dry-run).
	File    string  `json:"file"`
	DryRun  bool    `json:"dry_run"`
	Rules   Rules   `json:"rules"`
	Blocked Blocked `json:"blocked"`
}

// Rules are the policy file's rules as it writes them. Lists are never
// null, so that a client can iterate without checks.
type Rules struct {
	Deny           []DenyRule  `json:"deny"`
	Allow          []AllowRule `json:"allow"`
	MinAge         []AgeRule   `json:"min_age"`
	VulnDB         string      `json:"vulndb,omitempty"`
	Waive          []Waiver    `json:"waive"`
	BlockRetracted bool        `json:"block_retracted"`
}

// DenyRule is one deny entry: module patterns, a version range ("" for
// every version) and the reason given to clients.
type DenyRule struct {
	Module   string `json:"module" yaml:"module"`
	Versions string `json:"versions,omitempty" yaml:"versions"`
	Reason   string `json:"reason,omitempty" yaml:"reason"`
}

// AllowRule is one allow entry. With allow rules, nothing else is served.
type AllowRule struct {
	Module string `json:"module" yaml:"module"`
	Reason string `json:"reason,omitempty" yaml:"reason"`
}

// AgeRule is one min-age entry; Age as the file writes it ("72h", "7d").
type AgeRule struct {
	Module string `json:"module" yaml:"module"`
	Age    string `json:"age" yaml:"age"`
}

// Waiver lets the versions of Module ("" for all) that an advisory
// affects be served despite it.
type Waiver struct {
	ID     string `json:"id" yaml:"id"`
	Module string `json:"module,omitempty" yaml:"module"`
	Reason string `json:"reason,omitempty" yaml:"reason"`
}

// Blocked is what the policy refused (or, in a dry run, would have).
type Blocked struct {
	// Since is when counting began: the engine's start.
	Since time.Time `json:"since"`
	// ByRule counts refused requests by rule ("deny", "allow", "vuln",
	// "min-age", "retracted").
	ByRule map[string]int64 `json:"by_rule"`
	// Recent are the last refusals, newest first, at most
	// MaxRecentRefusals.
	Recent []Refusal `json:"recent"`
}

// Refusal is one refused request.
type Refusal struct {
	Time    time.Time `json:"time"`
	Module  string    `json:"module"`
	Version string    `json:"version"` // "" for @latest with no allowed version
	Rule    string    `json:"rule"`
	Reason  string    `json:"reason"`
	// Principal is the token's name, or "anonymous".
	Principal string `json:"principal"`
	RequestID string `json:"request_id,omitempty"`
	// DryRun marks a refusal that was only recorded ("would-deny").
	DryRun bool `json:"dry_run,omitempty"`
}

// View returns the policy in force and what it refused.
func (e *Engine) View() (*View, error) {
	rules, err := rulesOf(e.cur.Load().data)
	if err != nil {
		// The file was accepted by parse: this is a bug, not bad input.
		return nil, fmt.Errorf("policy view of %s: %w", e.cfg.File, err)
	}
	return &View{File: e.cfg.File, DryRun: e.cfg.DryRun, Rules: rules, Blocked: e.blocked.snapshot()}, nil
}

// ViewHandler serves GET /admin/v1/policy: the View as JSON. Who may ask
// is the caller's business (the admin gate). A nil Engine (no policy
// configured) answers 404 saying how to configure one.
func (e *Engine) ViewHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			goproxy.WriteError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
			return
		}
		if e == nil {
			goproxy.WriteError(w, r, http.StatusNotFound, "no download policy is configured; start modgate with --policy FILE (see docs/gate.md)")
			return
		}
		if len(r.URL.Query()) != 0 {
			goproxy.WriteError(w, r, http.StatusBadRequest, "GET /admin/v1/policy takes no parameters")
			return
		}
		v, err := e.View()
		if err != nil {
			e.log.Error("policy view failed", "err", err)
			goproxy.WriteError(w, r, http.StatusInternalServerError, "cannot show the policy; see modgate's log")
			return
		}
		goproxy.WriteJSON(w, r, http.StatusOK, v)
	})
}

// rulesOf reads the rules of a policy file parse accepted. It decodes the
// file again rather than keeping the parsed form's strings: the engine's
// indexes hold patterns in the shape matching wants, not as written, and
// keep no reasons for allow and waive entries.
func rulesOf(data []byte) (Rules, error) {
	var f struct {
		Deny           []DenyRule  `yaml:"deny"`
		Allow          []allowNode `yaml:"allow"`
		MinAge         []AgeRule   `yaml:"min-age"`
		VulnDB         string      `yaml:"vulndb"`
		Waive          []Waiver    `yaml:"waive"`
		BlockRetracted bool        `yaml:"block-retracted"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return Rules{}, err
	}
	r := Rules{
		Deny:           nonNil(f.Deny),
		Allow:          make([]AllowRule, 0, len(f.Allow)),
		MinAge:         nonNil(f.MinAge),
		VulnDB:         redact.URL(f.VulnDB), // a URL may carry credentials
		Waive:          nonNil(f.Waive),
		BlockRetracted: f.BlockRetracted,
	}
	for _, a := range f.Allow {
		r.Allow = append(r.Allow, AllowRule(a))
	}
	for i := range r.Deny {
		r.Deny[i].Reason = strings.Join(strings.Fields(r.Deny[i].Reason), " ")
	}
	return r, nil
}

// allowNode is an allow entry: a pattern, or a mapping with module and
// reason.
type allowNode AllowRule

func (a *allowNode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		a.Module = n.Value
		return nil
	}
	return n.Decode((*AllowRule)(a))
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// blockLog counts refusals by rule and keeps the last MaxRecentRefusals
// in a ring: bounded memory whatever the traffic. One short critical
// section per refusal; allowed requests never touch it.
type blockLog struct {
	since time.Time

	mu     sync.Mutex
	byRule map[string]int64
	ring   [MaxRecentRefusals]Refusal
	next   int // where the next refusal goes
	n      int // refusals in ring, up to its size
}

func newBlockLog(since time.Time) *blockLog {
	return &blockLog{since: since.UTC(), byRule: map[string]int64{}}
}

// add records a refusal of the request of ctx.
func (b *blockLog) add(ctx context.Context, path, version string, v Verdict, dryRun bool, now time.Time) {
	who := protocol.Anonymous
	if p, ok := protocol.PrincipalFrom(ctx); ok {
		who = p.Name
	}
	r := Refusal{
		Time: now.UTC(), Module: path, Version: version, Rule: v.Rule, Reason: v.Reason,
		Principal: who, RequestID: protocol.RequestID(ctx), DryRun: dryRun,
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byRule[v.Rule]++
	b.ring[b.next] = r
	b.next = (b.next + 1) % len(b.ring)
	b.n = min(b.n+1, len(b.ring))
}

// snapshot copies the counts and the refusals, newest first.
func (b *blockLog) snapshot() Blocked {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := Blocked{Since: b.since, ByRule: make(map[string]int64, len(b.byRule)), Recent: make([]Refusal, 0, b.n)}
	for k, v := range b.byRule {
		out.ByRule[k] = v
	}
	for i := 1; i <= b.n; i++ {
		out.Recent = append(out.Recent, b.ring[(b.next-i+len(b.ring))%len(b.ring)])
	}
	return out
}
