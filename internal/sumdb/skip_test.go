package sumdb

import (
	"context"
	"strings"
	"testing"
)

// TestVerifySkipPredicate: Config.Skip exempts paths like NoSumDB does (the
// private routes of modgate's source router come this way), and the two
// add up.
func TestVerifySkipPredicate(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	private := func(path string) bool { return strings.HasPrefix(path, "git.internal.example/") }
	v := NewVerifier(Config{DB: db.DB(), Store: newDisk(t), Remote: NewRemote(db.DB(), nil, testClient),
		NoSumDB: "corp.example.com", Skip: private, Logger: testLogger(t)})
	t.Cleanup(func() { v.Close() })
	ctx := context.Background()

	for _, p := range []string{"git.internal.example/team/lib", "corp.example.com/secret"} {
		if !v.Skips(p) {
			t.Errorf("Skips(%q) = false", p)
		}
		v.Prefetch(p, "v1.0.0")
		if err := v.Verify(ctx, p, "v1.0.0", false, fakeH1("anything")); err != nil {
			t.Errorf("Verify(%s): %v", p, err)
		}
	}
	if n := db.total(); n != 0 {
		t.Errorf("%d requests reached the database for skipped paths: %v", n, db.requests())
	}
	// Everything else is still checked.
	if v.Skips(modX) {
		t.Errorf("Skips(%q) = true", modX)
	}
	verifyErr(t, v.Verify(ctx, modX, "v1.0.0", false, fakeH1("bad")), Mismatch)
}
