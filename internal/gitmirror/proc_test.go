package gitmirror

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNoSecretInCommandLines looks at the command line of every process
// while git is in the middle of an authenticated fetch: the password
// must be in none of them (it is in the environment of git's processes
// only, which other users cannot read).
func TestNoSecretInCommandLines(t *testing.T) {
	if _, err := os.Stat("/proc/self/cmdline"); err != nil {
		t.Skip("no /proc")
	}
	f := newFixture(t, Config{})
	r := f.open(t)
	f.srv.Hang(true) // authenticated requests stall; unauthenticated ones get 401 first
	done := make(chan error, 1)
	go func() { done <- r.Fetch(context.Background()) }()
	// Two requests: the anonymous one (401), then the one with the
	// password from the credential helper, which hangs.
	for f.srv.GitRequests("team/repo") < 2 {
		select {
		case err := <-done:
			t.Fatalf("fetch ended early: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	sawGit := false
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, testPassword) {
			t.Errorf("%s shows the password: %s", p, cmdline)
		}
		// Other test packages run git against the same fixture URL at the
		// same time: only this test's git runs in its mirror directory.
		cwd, _ := os.Readlink(filepath.Join(filepath.Dir(p), "cwd"))
		if strings.Contains(cmdline, "remote-http") && strings.Contains(cmdline, f.url) && strings.HasPrefix(cwd, r.Dir()) {
			sawGit = true
			// Its environment does hold the password (that is where it
			// is meant to be): proof that this is the authenticated run.
			env, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "environ"))
			if !strings.Contains(string(env), "MODGATE_GIT_PASSWORD="+testPassword) {
				t.Errorf("git's environment has no password: the credential path was not exercised")
			}
		}
	}
	if !sawGit {
		t.Error("git-remote-http was not running during the scan")
	}
	f.m.Close() // stops the hanging fetch
	if err := <-done; err == nil {
		t.Error("fetch succeeded")
	}
}

func TestParseBatch(t *testing.T) {
	in := "abc ambiguous\nx missing\n" +
		"1111111111111111111111111111111111111111 blob 3\nabc\n" +
		"2222222222222222222222222222222222222222 blob 5\nhello\n" +
		"3333333333333333333333333333333333333333 tree 0\n\n"
	objs, stopped, err := parseBatch(bufio.NewReader(strings.NewReader(in)), 5, 4, false)
	if err != nil || stopped || len(objs) != 5 {
		t.Fatalf("parseBatch = %v, %v, %v", objs, stopped, err)
	}
	if objs[0].oid != "" || objs[1].oid != "" {
		t.Errorf("ambiguous or missing objects found: %+v %+v", objs[0], objs[1])
	}
	if string(objs[2].content) != "abc" || !objs[3].tooLarge || objs[3].content != nil || objs[4].typ != "tree" {
		t.Errorf("objects %+v", objs[2:])
	}
	if _, _, err := parseBatch(bufio.NewReader(strings.NewReader("1111 blob 3\nab")), 1, 10, false); err == nil {
		t.Error("a truncated object parsed")
	}
}
