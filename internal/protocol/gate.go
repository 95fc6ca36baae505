package protocol

import (
	"context"
	"fmt"
)

// What the gate (authentication, policy, audit) needs to carry along a
// request, from the HTTP layer to the wrappers and back: who asks, which
// request it is, and what the policy decided. Values in a context, so that
// the Modules interface stays the protocol and nothing else.

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request's id (X-Request-Id).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Principal is who a request is from: a token's name, or Anonymous.
type Principal struct {
	Name  string
	Admin bool
}

// Anonymous is the principal of requests without a token.
const Anonymous = "anonymous"

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries; ok is false when
// authentication is off.
func PrincipalFrom(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Decision is what the policy decided about a request, for the audit log:
// Outcome is "allow", "deny" or "would-deny" (dry run), Rule the rule that
// decided ("" for allow).
type Decision struct {
	Outcome string
	Rule    string
}

type decisionKey struct{}

// WithDecision returns ctx carrying a Decision for the policy to fill in,
// and that Decision.
func WithDecision(ctx context.Context) (context.Context, *Decision) {
	d := &Decision{}
	return context.WithValue(ctx, decisionKey{}, d), d
}

// DecisionFrom returns the Decision ctx carries, or nil.
func DecisionFrom(ctx context.Context) *Decision {
	d, _ := ctx.Value(decisionKey{}).(*Decision)
	return d
}

// UnauthorizedError refuses a request that needs a token and carried none
// or a bad one: 401, with a WWW-Authenticate challenge so that the go
// command sends its GOAUTH or .netrc credentials.
type UnauthorizedError struct{ Msg string }

func (e *UnauthorizedError) Error() string { return e.Msg }

// ForbiddenError refuses a request whose token may not read the module.
type ForbiddenError struct{ Msg string }

func (e *ForbiddenError) Error() string { return e.Msg }

// PolicyError refuses a version the download policy blocks.
type PolicyError struct {
	Module, Version string
	Rule            string // "deny", "allow", "min-age", "vuln", "retracted"
	Reason          string
}

func (e *PolicyError) Error() string {
	if e.Version == "" {
		return fmt.Sprintf("%s blocked by policy: %s: %s", e.Module, e.Rule, e.Reason)
	}
	return fmt.Sprintf("%s@%s blocked by policy: %s: %s", e.Module, e.Version, e.Rule, e.Reason)
}
