package gitmirror

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// fetchCall is one fetch and the callers waiting for it.
type fetchCall struct {
	done chan struct{}
	err  error
}

// Fetch brings the mirror up to date with the remote (all branches and
// tags, and HEAD), incrementally. Concurrent calls share one git fetch.
//
// A call returns the result of a fetch that started after it was made: a
// call made while a fetch is in progress waits for the next one, which
// every call waiting meanwhile shares. So a burst of calls costs at most
// two fetches, and a caller that knows the remote just changed (a webhook)
// is never answered by a fetch that began before the change.
//
// A failed fetch changes nothing: refs are updated in one transaction at
// the end, and a fetch that would grow the mirror past MaxRepoSize is
// stopped, or undone. Errors are *Error values naming the host.
func (r *Repo) Fetch(ctx context.Context) error {
	r.m.mu.Lock()
	if r.m.closed {
		r.m.mu.Unlock()
		return errors.New("gitmirror: closed")
	}
	r.mu.Lock()
	var c *fetchCall
	if r.running == nil {
		c = &fetchCall{done: make(chan struct{})}
		r.running = c
		r.m.wg.Add(1)
		go r.runFetch(c)
	} else {
		if r.next == nil {
			r.next = &fetchCall{done: make(chan struct{})}
		}
		c = r.next
	}
	r.mu.Unlock()
	r.m.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("%s: fetch abandoned: %w", r.rem.host, context.Cause(ctx))
	}
}

// runFetch runs c, then the fetch queued behind it, if any. Fetches are
// bounded by Mirrors' context (Close), not by the caller's: others may be
// waiting for the same one.
func (r *Repo) runFetch(c *fetchCall) {
	defer r.m.wg.Done()
	err := r.fetch(r.m.ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	c.err = err
	close(c.done)
	r.running, r.next = r.next, nil
	if r.running != nil {
		r.m.wg.Add(1)
		go r.runFetch(r.running)
	}
}

// errSizeLimit is the cause of a fetch stopped for MaxRepoSize.
var errSizeLimit = errors.New("size limit")

// sizePoll is how often a running fetch's growth is checked (a variable
// for tests).
var sizePoll = 100 * time.Millisecond

func (r *Repo) fetch(ctx context.Context) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.m.cfg.Timeout)
	defer cancel()
	err := r.fetchLocked(ctx)
	if err != nil {
		r.m.log.Warn("git fetch failed", "remote", r.rem.url, "error", err.Error(), "duration", time.Since(start))
	}
	return err
}

func (r *Repo) fetchLocked(ctx context.Context) error {
	if err := r.m.checkScheme(r.rem); err != nil {
		return err
	}
	creds, _ := r.m.cfg.Credentials(r.rem.host)
	config, env, err := credentialConfig(r.rem, creds, r.m.cfg.LowSpeedTime)
	if err != nil {
		return err
	}
	net := func(args ...string) gitRun {
		return gitRun{args: args, config: config, env: env, allowHTTP: r.rem.scheme == "http"}
	}
	// Every fetch keeps what it receives as one pack (no loose objects):
	// a pack being received can be measured and, if the fetch fails or is
	// undone, removed whole.
	packed := net("fetch", "--prune", "--atomic", "--no-write-fetch-head",
		"--no-auto-gc", "--no-show-forced-updates", "--quiet", "origin")
	packed.config = append(slices.Clip(packed.config), [2]string{"fetch.unpackLimit", "1"})
	unlock, err := lockFile(ctx, filepath.Join(r.dir, lockName))
	if err != nil {
		return r.netError(ctx, err)
	}
	defer unlock()

	start := time.Now()
	if err := r.checkSize(); err != nil {
		return err
	}
	out, err := r.run(ctx, net("ls-remote", "--symref", "origin"))
	if err != nil {
		return r.netError(ctx, err)
	}
	remoteRefs, head := parseLsRemote(out)
	before, err := r.localRefs(ctx)
	if err != nil {
		return err
	}
	changed := !maps.Equal(before, remoteRefs)
	if changed {
		if err := r.fetchPack(ctx, packed, before); err != nil {
			return err
		}
		// Housekeeping: git gc --auto packs loose objects once there are
		// many (gc.autoDetach=false keeps it inside this bounded command).
		if _, err := r.run(ctx, gitRun{args: []string{"gc", "--auto", "--quiet"}}); err != nil {
			r.m.log.Warn("git gc --auto failed", "remote", r.rem.url, "error", err.Error())
		}
	}
	if err := r.setHEAD(ctx, head, remoteRefs); err != nil {
		return err
	}
	now := time.Now()
	if err := r.writeFetched(now); err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	r.mu.Lock()
	r.fetchedAt = now
	r.mu.Unlock()
	r.m.log.Info("git mirror fetched", "remote", r.rem.url, "changed", changed, "refs", len(remoteRefs), "duration", time.Since(start))
	return nil
}

// checkSize refuses to fetch into a mirror already at its limit.
func (r *Repo) checkSize() error {
	size, err := r.Size()
	if err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	if size > r.m.cfg.MaxRepoSize {
		return r.tooLarge()
	}
	return nil
}

func (r *Repo) tooLarge() error {
	return &Error{Host: r.rem.host, Kind: KindTooLarge,
		Detail: fmt.Sprintf("the mirror of %s would exceed %s (raise the size limit to mirror it)", r.rem.url, formatBytes(r.m.cfg.MaxRepoSize))}
}

// fetchPack runs the fetch, stopping it once the mirror grows past
// MaxRepoSize, and undoing it if it ended past it between two checks.
func (r *Repo) fetchPack(ctx context.Context, g gitRun, before map[string]string) error {
	packsBefore, _ := filepath.Glob(filepath.Join(r.dir, "objects", "pack", "*"))
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(sizePoll)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				if size, err := r.Size(); err == nil && size > r.m.cfg.MaxRepoSize {
					cancel(errSizeLimit)
					return
				}
			}
		}
	}()
	_, err := r.run(wctx, g)
	cancel(nil)
	<-watched
	if err != nil {
		if errors.Is(context.Cause(wctx), errSizeLimit) {
			// Stopped for its size: all of it goes, even refs git may
			// have updated just before it was stopped.
			r.undoFetch(ctx, before, packsBefore)
			return r.tooLarge()
		}
		// git fetch updates refs last, in one transaction: unless they
		// changed (it failed after that), nothing refers to what it
		// received, which goes.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer ccancel()
		if after, lerr := r.localRefs(cctx); lerr == nil && maps.Equal(after, before) {
			removeNewPacks(r.dir, packsBefore)
		}
		return r.netError(ctx, err)
	}
	if size, serr := r.Size(); serr == nil && size > r.m.cfg.MaxRepoSize {
		r.undoFetch(ctx, before, packsBefore)
		return r.tooLarge()
	}
	return nil
}

// undoFetch puts the refs back as they were before a fetch that grew the
// mirror too much, and removes the packs it brought.
func (r *Repo) undoFetch(ctx context.Context, before map[string]string, packsBefore []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	after, err := r.localRefs(ctx)
	if err != nil {
		r.m.log.Error("git mirror: cannot undo an oversized fetch", "remote", r.rem.url, "error", err.Error())
		return
	}
	var tx strings.Builder
	tx.WriteString("start\n")
	for name := range after {
		if _, ok := before[name]; !ok {
			fmt.Fprintf(&tx, "delete %s\n", name)
		}
	}
	for name, oid := range before {
		if after[name] != oid {
			fmt.Fprintf(&tx, "update %s %s\n", name, oid)
		}
	}
	tx.WriteString("commit\n")
	if _, err := r.run(ctx, gitRun{args: []string{"update-ref", "--stdin"}, stdin: strings.NewReader(tx.String())}); err != nil {
		r.m.log.Error("git mirror: cannot undo an oversized fetch", "remote", r.rem.url, "error", err.Error())
		return
	}
	removeNewPacks(r.dir, packsBefore)
}

// removeNewPacks removes the files of objects/pack that are not in
// packsBefore: what a fetch received (every fetch keeps one pack, see
// fetch.unpackLimit), or was receiving when it was killed.
func removeNewPacks(dir string, packsBefore []string) {
	old := map[string]bool{}
	for _, p := range packsBefore {
		old[p] = true
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*"))
	for _, p := range packs {
		if !old[p] {
			os.Remove(p)
		}
	}
}

// netError turns a failed network command into an *Error.
func (r *Repo) netError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &Error{Host: r.rem.host, Kind: KindTimeout, Detail: "after " + r.m.cfg.Timeout.String()}
	case r.m.ctx.Err() != nil:
		return fmt.Errorf("%s: fetch stopped: modgate is shutting down", r.rem.host)
	}
	var re *runError
	if errors.As(err, &re) {
		lowSpeed := fmt.Sprintf("after %s without data (less than 1 KiB/s)", r.m.cfg.LowSpeedTime)
		return classify(r.rem.host, re.stderr, lowSpeed)
	}
	return &Error{Host: r.rem.host, Kind: KindOther, Detail: lineOf(err.Error())}
}

// parseLsRemote reads `git ls-remote --symref` output: the branches and
// tags (peeled entries dropped) and the branch HEAD points to.
func parseLsRemote(out []byte) (refs map[string]string, head string) {
	refs = map[string]string{}
	for _, line := range readLines(out) {
		if target, ok := strings.CutPrefix(line, "ref: "); ok {
			if t, name, ok := strings.Cut(target, "\t"); ok && name == "HEAD" {
				head = t
			}
			continue
		}
		oid, name, ok := strings.Cut(line, "\t")
		if !ok || strings.HasSuffix(name, "^{}") {
			continue
		}
		if strings.HasPrefix(name, "refs/heads/") || strings.HasPrefix(name, "refs/tags/") {
			refs[name] = oid
		}
	}
	return refs, head
}

// localRefs lists the mirror's branches and tags with the objects they
// point to (tags not peeled), as ls-remote shows them.
func (r *Repo) localRefs(ctx context.Context) (map[string]string, error) {
	out, err := r.run(ctx, gitRun{args: []string{"for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/", "refs/tags/"}})
	if err != nil {
		return nil, fmt.Errorf("gitmirror: %w", err)
	}
	refs := map[string]string{}
	for _, line := range readLines(out) {
		if oid, name, ok := strings.Cut(line, " "); ok {
			refs[name] = oid
		}
	}
	return refs, nil
}

// setHEAD points the mirror's HEAD at the remote's default branch.
func (r *Repo) setHEAD(ctx context.Context, head string, remoteRefs map[string]string) error {
	if !strings.HasPrefix(head, "refs/heads/") || remoteRefs[head] == "" {
		return nil // the remote has no default branch (empty, or a detached HEAD)
	}
	cur, _ := os.ReadFile(filepath.Join(r.dir, "HEAD"))
	if strings.TrimSpace(string(cur)) == "ref: "+head {
		return nil
	}
	if _, err := r.run(ctx, gitRun{args: []string{"symbolic-ref", "HEAD", head}}); err != nil {
		return fmt.Errorf("gitmirror: %w", err)
	}
	return nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
