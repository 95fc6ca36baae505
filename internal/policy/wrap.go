package policy

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/mod/semver"

	"github.com/modgate/modgate/internal/protocol"
)

// Candidates of @latest tried when the latest version is blocked: each may
// cost an .info read, so a module whose every recent version is blocked is
// refused rather than searched through.
const maxLatestTries = 16

// Wrap returns inner with the policy applied to every request, as the
// package protocol's "Filtering versions" describes: blocked versions are
// refused with a *protocol.PolicyError (served and logged as "would deny"
// in a dry run), left out of @v/list, and never chosen for @latest. Each
// request's protocol.Decision, when its context carries one, records the
// outcome.
func (e *Engine) Wrap(inner protocol.Modules) protocol.Modules {
	return &gate{Modules: inner, e: e, retracts: newRetractTable()}
}

type gate struct {
	protocol.Modules
	e *Engine
	// retracts holds each module's retractions (block-retracted).
	retracts *lru.Cache[string, retractEntry]
}

// verdict decides on version, reading its .info time from inner only when
// a minimum age applies to the module and nothing else blocks it.
func (g *gate) verdict(ctx context.Context, p *policy, path, version string, t time.Time) Verdict {
	now := g.e.cfg.Now()
	v := p.decide(path, version, time.Time{}, now)
	if !v.Allowed {
		return v
	}
	if r, ok := g.retracted(ctx, p, path, version); ok {
		return r
	}
	if t.IsZero() && p.ageRule(path) == nil {
		return v
	}
	if t.IsZero() {
		f, err := g.Modules.Info(ctx, path, version)
		if err != nil {
			return v // the request itself will meet the error
		}
		t = infoTime(f)
		f.Content.Close()
	}
	return p.decide(path, version, t, now)
}

// enforce turns a verdict into the request's outcome: nil to serve.
func (g *gate) enforce(ctx context.Context, path, version string, v Verdict) error {
	d := protocol.DecisionFrom(ctx)
	if v.Allowed {
		if d != nil {
			d.Outcome, d.Rule = "allow", ""
		}
		return nil
	}
	g.e.blocked.add(ctx, path, version, v, g.e.cfg.DryRun, g.e.cfg.Now())
	if g.e.cfg.DryRun {
		if d != nil {
			d.Outcome, d.Rule = "would-deny", v.Rule
		}
		g.e.log.Info("would deny", "module", path, "version", version, "rule", v.Rule, "reason", v.Reason, "request_id", protocol.RequestID(ctx))
		return nil
	}
	if d != nil {
		d.Outcome, d.Rule = "deny", v.Rule
	}
	return &protocol.PolicyError{Module: path, Version: version, Rule: v.Rule, Reason: v.Reason}
}

func (g *gate) Info(ctx context.Context, path, query string) (*protocol.File, error) {
	p := g.e.cur.Load()
	if protocol.IsCanonical(path, query) && !g.e.cfg.DryRun {
		// Refuse before asking: a denied version is never fetched.
		if v := p.decide(path, query, time.Time{}, g.e.cfg.Now()); !v.Allowed {
			if err := g.enforce(ctx, path, query, v); err != nil {
				return nil, err
			}
		}
	}
	f, err := g.Modules.Info(ctx, path, query)
	if err != nil {
		return nil, err
	}
	if err := g.enforce(ctx, path, f.Version, g.verdict(ctx, p, path, f.Version, infoTime(f))); err != nil {
		f.Content.Close()
		return nil, err
	}
	return f, nil
}

func (g *gate) GoMod(ctx context.Context, path, version string) (*protocol.File, error) {
	if err := g.check(ctx, path, version); err != nil {
		return nil, err
	}
	return g.Modules.GoMod(ctx, path, version)
}

func (g *gate) Zip(ctx context.Context, path, version string) (*protocol.File, error) {
	if err := g.check(ctx, path, version); err != nil {
		return nil, err
	}
	return g.Modules.Zip(ctx, path, version)
}

func (g *gate) check(ctx context.Context, path, version string) error {
	p := g.e.cur.Load()
	return g.enforce(ctx, path, version, g.verdict(ctx, p, path, version, time.Time{}))
}

func (g *gate) List(ctx context.Context, path string) (*protocol.Versions, error) {
	vs, err := g.Modules.List(ctx, path)
	if err != nil {
		return nil, err
	}
	if d := protocol.DecisionFrom(ctx); d != nil {
		d.Outcome, d.Rule = "allow", ""
	}
	if !g.e.cfg.DryRun {
		g.filter(ctx, g.e.cur.Load(), path, vs)
	}
	return vs, nil
}

// filter drops from vs the versions p blocks. A version's time comes from
// its list line; when the line has none and a minimum age applies, the
// .info of the highest versions is read until one is old enough, as those
// are the ones a client would pick.
func (g *gate) filter(ctx context.Context, p *policy, path string, vs *protocol.Versions) {
	now := g.e.cfg.Now()
	age := p.ageRule(path) != nil
	for _, list := range []*[]protocol.Version{&vs.Tagged, &vs.Pseudo} {
		tries := 0
		settled := !age // below an old-enough version, times are not looked up
		for i := len(*list) - 1; i >= 0; i-- {
			ver := &(*list)[i]
			t := ver.Time
			if t.IsZero() && !settled && tries < maxLatestTries {
				if f, err := g.Modules.Info(ctx, path, ver.Version); err == nil {
					t = infoTime(f)
					f.Content.Close()
				}
				tries++
			}
			v := p.decide(path, ver.Version, t, now)
			if v.Allowed {
				if r, ok := g.retracted(ctx, p, path, ver.Version); ok {
					v = r
				}
			}
			if v.Allowed && !t.IsZero() {
				settled = true
			}
			if !v.Allowed {
				ver.Version = "" // dropped below
			}
		}
		*list = slices.DeleteFunc(*list, func(v protocol.Version) bool { return v.Version == "" })
	}
}

func (g *gate) Latest(ctx context.Context, path string) (*protocol.File, error) {
	p := g.e.cur.Load()
	f, err := g.Modules.Latest(ctx, path)
	if err != nil {
		return nil, err
	}
	v := g.verdict(ctx, p, path, f.Version, infoTime(f))
	if v.Allowed || g.e.cfg.DryRun {
		return f, g.enforce(ctx, path, f.Version, v)
	}
	blocked := f.Version
	f.Content.Close()
	vs, err := g.Modules.List(ctx, path)
	if err != nil {
		return nil, err
	}
	// The order PickLatest chooses in: releases, then pre-releases, then
	// pseudo-versions, highest first.
	var order []string
	for i := len(vs.Tagged) - 1; i >= 0; i-- {
		if semver.Prerelease(vs.Tagged[i].Version) == "" {
			order = append(order, vs.Tagged[i].Version)
		}
	}
	for i := len(vs.Tagged) - 1; i >= 0; i-- {
		if semver.Prerelease(vs.Tagged[i].Version) != "" {
			order = append(order, vs.Tagged[i].Version)
		}
	}
	if len(order) == 0 {
		for i := len(vs.Pseudo) - 1; i >= 0; i-- {
			order = append(order, vs.Pseudo[i].Version)
		}
	}
	tries := 0
	for _, cand := range order {
		if cand == blocked {
			continue
		}
		// Cheap rules first: only a candidate they allow costs an .info read.
		if !p.decide(path, cand, time.Time{}, g.e.cfg.Now()).Allowed {
			continue
		}
		if tries++; tries > maxLatestTries {
			break
		}
		f, err := g.Modules.Info(ctx, path, cand)
		if err != nil {
			continue
		}
		if !g.verdict(ctx, p, path, cand, infoTime(f)).Allowed {
			f.Content.Close()
			continue
		}
		if err := g.enforce(ctx, path, cand, allowed); err != nil {
			f.Content.Close()
			return nil, err
		}
		f.Mutable, f.Degraded = true, vs.Degraded
		return f, nil
	}
	v.Reason = "no allowed version (latest " + blocked + ": " + v.Reason + ")"
	return nil, g.enforce(ctx, path, "", v)
}

// infoTime returns the Time of an .info answer, zero when it has none, and
// rewinds the answer for its caller.
func infoTime(f *protocol.File) time.Time {
	var info struct{ Time time.Time }
	data, err := io.ReadAll(io.LimitReader(f.Content, 64<<10))
	if _, serr := f.Content.Seek(0, io.SeekStart); serr != nil || err != nil {
		return time.Time{}
	}
	if json.Unmarshal(data, &info) != nil {
		return time.Time{}
	}
	return info.Time
}
