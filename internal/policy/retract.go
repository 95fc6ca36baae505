package policy

import (
	"context"
	"io"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// block-retracted refuses the versions a module's author retracted: the
// retract directives of the go.mod of the module's latest version, as the
// go command reads them. They are kept per module for retractTTL, in a
// bounded table, so that a request costs a lookup, not a go.mod read.
const (
	retractTTL        = 10 * time.Minute
	maxRetractModules = 4096
	maxGoModRead      = 1 << 20
)

// retraction is one retract directive: the versions from low to high.
type retraction struct {
	low, high, rationale string
}

type retractEntry struct {
	list    []retraction
	fetched time.Time
}

func newRetractTable() *lru.Cache[string, retractEntry] {
	c, err := lru.New[string, retractEntry](maxRetractModules)
	if err != nil {
		panic(err)
	}
	return c
}

// retracted returns the verdict on version when p blocks retracted
// versions and the module's author retracted it; ok is false otherwise.
// When the retractions cannot be read (the origin is down), nothing is
// refused for them: the other rules still hold.
func (g *gate) retracted(ctx context.Context, p *policy, path, version string) (v Verdict, ok bool) {
	if !p.blockRetracted {
		return Verdict{}, false
	}
	now := g.e.cfg.Now()
	e, found := g.retracts.Get(path)
	if !found || now.Sub(e.fetched) > retractTTL {
		list, err := g.readRetractions(ctx, path)
		if err != nil {
			return Verdict{}, false
		}
		e = retractEntry{list: list, fetched: now}
		g.retracts.Add(path, e)
	}
	for _, r := range e.list {
		if semver.Compare(version, r.low) >= 0 && semver.Compare(version, r.high) <= 0 {
			reason := "retracted by the module's author"
			if r.rationale != "" {
				reason += ": " + r.rationale
			}
			return Verdict{Rule: "retracted", Reason: reason}, true
		}
	}
	return Verdict{}, false
}

// readRetractions reads the retract directives of path's latest go.mod
// from the modules the gate wraps (not through the policy: a retraction
// in a version the policy blocks still counts).
func (g *gate) readRetractions(ctx context.Context, path string) ([]retraction, error) {
	latest, err := g.Modules.Latest(ctx, path)
	if err != nil {
		return nil, err
	}
	version := latest.Version
	latest.Content.Close()
	f, err := g.Modules.GoMod(ctx, path, version)
	if err != nil {
		return nil, err
	}
	defer f.Content.Close()
	data, err := io.ReadAll(io.LimitReader(f.Content, maxGoModRead))
	if err != nil {
		return nil, err
	}
	mf, err := modfile.ParseLax("go.mod", data, nil)
	if err != nil {
		return nil, err
	}
	list := make([]retraction, 0, len(mf.Retract))
	for _, r := range mf.Retract {
		list = append(list, retraction{low: r.Low, high: r.High, rationale: r.Rationale})
	}
	return list, nil
}
