package auth_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/auth"
	"github.com/modgate/modgate/internal/testenv"
)

// eventually polls cond until it holds, failing after a deadline far
// beyond the reload interval: the test waits for an event, it does not
// time one.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: did not happen", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func logger(t *testing.T) (*slog.Logger, *testenv.SyncBuffer) {
	buf := &testenv.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// noSecrets fails when text holds one of the tokens or the hex of its hash.
func noSecrets(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) || strings.Contains(text, hashOf(s)[7:]) {
			t.Errorf("%s holds a token or its hash:\n%s", what, text)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	ci, _ := auth.Add(file, "ci", []string{"corp.example.com"}, false, time.Now())
	ops, _ := auth.Add(file, "ops", []string{"*"}, true, time.Now())
	log, logs := logger(t)
	s, err := auth.Open(file, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if tok, ok := s.Authenticate(ci); !ok || tok.Name != "ci" || tok.Admin || tok.AllowString() != "corp.example.com" {
		t.Errorf("Authenticate(ci) = %+v, %v", tok, ok)
	}
	if tok, ok := s.Authenticate(ops); !ok || tok.Name != "ops" || !tok.Admin {
		t.Errorf("Authenticate(ops) = %+v, %v", tok, ok)
	}
	last := ci[len(ci)-1]
	other := map[byte]byte{'A': 'B'}[last]
	if other == 0 {
		other = 'A'
	}
	for _, bad := range []string{"", ci[:len(ci)-1] + string(other), ci + " ", hashOf(ci), hashOf(ci)[7:]} {
		if tok, ok := s.Authenticate(bad); ok {
			t.Errorf("Authenticate(%q) = %+v, want refused", bad, tok)
		}
	}
	noSecrets(t, "log", logs.String(), ci, ops)
}

func TestOpenRefusesMissingOrBrokenFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := auth.Open(filepath.Join(dir, "missing.json"), nil); err == nil {
		t.Error("Open of a missing file succeeded")
	}
	broken := filepath.Join(dir, "broken.json")
	os.WriteFile(broken, []byte(`{"tokens": [`), 0o600)
	if _, err := auth.Open(broken, nil); err == nil {
		t.Error("Open of a broken file succeeded")
	}
}

// TestRevokeTakesEffect: with the production interval, a token added
// after Open starts working and a revoked one stops, without a restart.
func TestRevokeTakesEffect(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	old, _ := auth.Add(file, "old", []string{"*"}, false, time.Now())
	log, logs := logger(t)
	s, err := auth.Open(file, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	added, err := auth.Add(file, "new", []string{"*"}, false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "added token accepted", func() bool { _, ok := s.Authenticate(added); return ok })
	if err := auth.Revoke(file, "old"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revoked token refused", func() bool { _, ok := s.Authenticate(old); return !ok })
	if _, ok := s.Authenticate(added); !ok {
		t.Error("revoking old refused new as well")
	}
	noSecrets(t, "log", logs.String(), old, added)
}

// TestBrokenReloadKeepsTable: a change that breaks the file is logged
// once and the tokens loaded before keep working; the fix is picked up.
// An edit in place (same inode) is seen as well as a replacement.
func TestBrokenReloadKeepsTable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	a, _ := auth.Add(file, "a", []string{"*"}, false, time.Now())
	good, _ := os.ReadFile(file)
	log, logs := logger(t)
	s, err := auth.OpenEvery(file, log, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// A token pasted into the file by mistake, as a key: the log must not
	// repeat it.
	pasted := "mgt_" + strings.Repeat("Z", 43)
	broken := strings.Replace(string(good), `"tokens"`, `"`+pasted+`"`, 1)
	// In place, in one write over the whole of the old content: a
	// truncation first (os.WriteFile) would show the watcher an empty file,
	// a second broken state logged on its own.
	if len(broken) <= len(good) {
		t.Fatalf("the broken file is not longer than the good one: one write would not cover it")
	}
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(broken), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "broken file logged", func() bool { return strings.Contains(logs.String(), "is not valid") })
	if _, ok := s.Authenticate(a); !ok {
		t.Error("a broken file revoked the tokens loaded before")
	}

	b, err := auth.Add(file+"2", "b", []string{"*"}, false, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+"2", file); err != nil { // a replacement
		t.Fatal(err)
	}
	eventually(t, "fixed file loaded", func() bool { _, ok := s.Authenticate(b); return ok })
	if _, ok := s.Authenticate(a); ok {
		t.Error("token a, absent from the new file, still accepted")
	}
	if n := strings.Count(logs.String(), "is not valid"); n != 1 {
		t.Errorf("broken file logged %d times, want once", n)
	}
	noSecrets(t, "log", logs.String(), a, b, pasted)
}
