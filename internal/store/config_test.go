package store_test

import (
	"strings"
	"testing"

	"github.com/modgate/modgate/internal/store"
)

func TestNew(t *testing.T) {
	for _, kind := range []string{"", store.KindDisk} {
		dir := t.TempDir()
		s, err := store.New(t.Context(), store.Config{Kind: kind, Dir: dir})
		if err != nil {
			t.Fatalf("New(kind %q): %v", kind, err)
		}
		d, ok := s.(*store.Disk)
		if !ok || d.Root() != dir {
			t.Fatalf("New(kind %q) = %T, want a Disk rooted at %s", kind, s, dir)
		}
		if _, ok := s.(store.StagingCleaner); !ok {
			t.Errorf("New(kind %q) has no StagingCleaner", kind)
		}
		if err := s.Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
	for _, tc := range []struct {
		cfg  store.Config
		want string
	}{
		{store.Config{Kind: "s4", Dir: t.TempDir()}, `unknown storage kind "s4" (known: disk, s3)`},
		{store.Config{Kind: store.KindDisk}, "needs a directory"},
	} {
		s, err := store.New(t.Context(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, %v; want an error containing %q", tc.cfg, s, err, tc.want)
		}
		if s != nil {
			t.Errorf("New(%+v) returned a store with its error", tc.cfg)
		}
	}
}
