package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRemoveStale: a scratch file older than the age (a killed process's
// leftover) goes, a recent one (a check in progress) and directories stay.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	old, fresh := filepath.Join(dir, "zip-old"), filepath.Join(dir, "zip-fresh")
	for _, f := range []string{old, fresh} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{old, filepath.Join(dir, "sub")} {
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	removeStale(dir, time.Hour)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale file kept: %v", err)
	}
	for _, p := range []string{fresh, filepath.Join(dir, "sub")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}
