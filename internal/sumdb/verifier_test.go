package sumdb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	modX = "example.com/x"
	modY = "example.com/y"
	modZ = "example.com/z"
)

// standardRecords holds x, y and z at v1.0.0.
func standardRecords() records {
	r := records{}
	for _, m := range []string{modX, modY, modZ} {
		r.add(m, "v1.0.0", fakeH1(m+" zip"), fakeH1(m+" mod"))
	}
	return r
}

func verifyErr(t *testing.T, err error, kind Kind) *VerifyError {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v (%T), want a *VerifyError of kind %d", err, err, kind)
	}
	if ve.Kind != kind {
		t.Fatalf("VerifyError kind = %d, want %d; error: %v", ve.Kind, kind, err)
	}
	return ve
}

func TestVerifyOK(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	st := newDisk(t)
	v := newTestVerifier(t, db, st, "")
	ctx := context.Background()
	ok0 := verifications(t, "ok")

	if err := v.Verify(ctx, modX, "v1.0.0", true, fakeH1(modX+" mod")); err != nil {
		t.Fatalf("go.mod: %v", err)
	}
	if err := v.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")); err != nil {
		t.Fatalf("zip: %v", err)
	}
	if d := verifications(t, "ok") - ok0; d != 2 {
		t.Errorf("verifications{result=ok} went up by %v, want 2", d)
	}
	// go.mod and zip share one lookup.
	if n := db.count("/lookup/"); n != 1 {
		t.Errorf("%d lookups reached the database, want 1: %v", n, db.requests())
	}
	if readKey(t, st, "sumdb/"+testDBName+"/latest") == nil {
		t.Error("the verified tree head was not stored")
	}
	if readKey(t, st, "sumdb/"+testDBName+"/lookup/"+modX+"@v1.0.0") == nil {
		t.Error("the verified lookup was not stored")
	}
	if v.SecurityProblem() != "" {
		t.Errorf("SecurityProblem() = %q", v.SecurityProblem())
	}
}

func TestVerifyMismatch(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	v := newTestVerifier(t, db, newDisk(t), "")
	ctx := context.Background()

	for _, gomod := range []bool{false, true} {
		mm0 := verifications(t, "mismatch")
		what, wantVers := "zip", "v1.0.0"
		if gomod {
			what, wantVers = "mod", "v1.0.0/go.mod"
		}
		want := fakeH1(modY + " " + what)
		got := fakeH1("tampered " + what)
		err := v.Verify(ctx, modY, "v1.0.0", gomod, got)
		ve := verifyErr(t, err, Mismatch)
		if ve.Path != modY || ve.Version != wantVers || ve.Got != got || len(ve.Want) != 1 || ve.Want[0] != want {
			t.Errorf("VerifyError = %+v, want path %s version %s got %s want [%s]", ve, modY, wantVers, got, want)
		}
		msg := err.Error()
		for _, s := range []string{"checksum mismatch", modY + "@" + wantVers, got, want, testDBName} {
			if !strings.Contains(msg, s) {
				t.Errorf("mismatch message %q does not mention %q", msg, s)
			}
		}
		if d := verifications(t, "mismatch") - mm0; d != 1 {
			t.Errorf("verifications{result=mismatch} went up by %v, want 1", d)
		}
	}
	if v.SecurityProblem() != "" {
		t.Errorf("a mismatch is not a database security problem; SecurityProblem() = %q", v.SecurityProblem())
	}
}

func TestVerifyNotInDB(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	v := newTestVerifier(t, db, newDisk(t), "")
	n0 := verifications(t, "not_in_db")
	err := v.Verify(context.Background(), "example.com/unknown", "v1.0.0", false, fakeH1("x"))
	ve := verifyErr(t, err, NotInDB)
	if !strings.Contains(err.Error(), "example.com/unknown@v1.0.0") || !strings.Contains(err.Error(), "--nosumdb") {
		t.Errorf("not-in-database message %q should name the module and the --nosumdb remedy", err)
	}
	if ve.Path != "example.com/unknown" {
		t.Errorf("Path = %q", ve.Path)
	}
	if d := verifications(t, "not_in_db") - n0; d != 1 {
		t.Errorf("verifications{result=not_in_db} went up by %v, want 1", d)
	}
	// A known module still verifies afterwards.
	if err := v.Verify(context.Background(), modX, "v1.0.0", false, fakeH1(modX+" zip")); err != nil {
		t.Errorf("after a not-found: %v", err)
	}
}

// TestVerifyUnavailableRecovers checks that a database outage is reported
// as Unavailable (not a verdict) and does not stick: x/mod's Client caches
// every failure for its lifetime, so the verifier must start a new client.
func TestVerifyUnavailableRecovers(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	v := newTestVerifier(t, db, newDisk(t), "")
	ctx := context.Background()

	// One verified module first, so the outage hits an initialized client.
	if err := v.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")); err != nil {
		t.Fatal(err)
	}
	db.stop()
	u0 := verifications(t, "unavailable")
	err := v.Verify(ctx, modY, "v1.0.0", false, fakeH1(modY+" zip"))
	verifyErr(t, err, Unavailable)
	if d := verifications(t, "unavailable") - u0; d != 1 {
		t.Errorf("verifications{result=unavailable} went up by %v, want 1", d)
	}
	// The same failure again while it is down (the client is not wedged
	// into another kind of error).
	verifyErr(t, v.Verify(ctx, modY, "v1.0.0", true, fakeH1(modY+" mod")), Unavailable)

	db.restart()
	if err := v.Verify(ctx, modY, "v1.0.0", false, fakeH1(modY+" zip")); err != nil {
		t.Fatalf("after the database came back, verification still fails: %v", err)
	}
	if err := v.Verify(ctx, modY, "v1.0.0", true, fakeH1(modY+" mod")); err != nil {
		t.Fatalf("after the database came back, go.mod verification still fails: %v", err)
	}
	// A mismatch is still a verdict after recovery.
	verifyErr(t, v.Verify(ctx, modZ, "v1.0.0", false, fakeH1("bad")), Mismatch)
	if v.SecurityProblem() != "" {
		t.Errorf("an outage is not a security problem; SecurityProblem() = %q", v.SecurityProblem())
	}
}

func TestVerifyNoSumDBNeverAsks(t *testing.T) {
	skey, vkey := testKeys(t)
	recs := standardRecords()
	recs.add("corp.example.com/secret", "v1.0.0", fakeH1("s zip"), fakeH1("s mod"))
	db := newTestDB(t, skey, vkey, recs)
	v := newTestVerifier(t, db, newDisk(t), "corp.example.com,*.internal.example")
	ctx := context.Background()
	s0 := verifications(t, "skipped")

	for _, p := range []string{"corp.example.com/secret", "corp.example.com/a/b/c", "git.internal.example/team/lib"} {
		if !v.Skips(p) {
			t.Errorf("Skips(%q) = false", p)
		}
		// Any hash passes: the path is never checked.
		if err := v.Verify(ctx, p, "v1.0.0", false, fakeH1("anything")); err != nil {
			t.Errorf("Verify(%s zip): %v", p, err)
		}
		if err := v.Verify(ctx, p, "v1.0.0", true, fakeH1("anything")); err != nil {
			t.Errorf("Verify(%s go.mod): %v", p, err)
		}
	}
	if d := verifications(t, "skipped") - s0; d != 6 {
		t.Errorf("verifications{result=skipped} went up by %v, want 6", d)
	}
	if v.Skips("corp.example.com.evil.example/x") || v.Skips("example.com/corp.example.com") {
		t.Error("Skips matches paths outside the patterns")
	}
	if n := db.total(); n != 0 {
		t.Errorf("%d requests reached the database for skipped paths: %v", n, db.requests())
	}
	// Public modules are still checked.
	verifyErr(t, v.Verify(ctx, modX, "v1.0.0", false, fakeH1("bad")), Mismatch)
	if n := db.count("corp.example.com") + db.count("internal.example"); n != 0 {
		t.Errorf("private paths reached the database: %v", db.requests())
	}
}

// TestTreeStatePersisted checks that the tree state lives in the store: a
// new verifier over the same store continues from the stored tree instead
// of starting over (which would also make fork detection impossible across
// restarts).
func TestTreeStatePersisted(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	st := newDisk(t)
	ctx := context.Background()
	latestKey := "sumdb/" + testDBName + "/latest"

	a := newTestVerifier(t, db, st, "")
	if err := a.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")); err != nil {
		t.Fatal(err)
	}
	stored := readKey(t, st, latestKey)
	if stored == nil {
		t.Fatal("no tree head stored")
	}
	if n := treeSize(t, db, stored); n != 1 {
		t.Fatalf("stored tree has %d records, want 1", n)
	}

	// A new verifier (a restart) answers for x from the store alone.
	b := newTestVerifier(t, db, st, "")
	before := db.total()
	if err := b.Verify(ctx, modX, "v1.0.0", true, fakeH1(modX+" mod")); err != nil {
		t.Fatal(err)
	}
	if n := db.total() - before; n != 0 {
		t.Errorf("a restarted verifier asked the database %d times for a stored lookup: %v", n, db.requests()[before:])
	}
	verifyErr(t, b.Verify(ctx, modX, "v1.0.0", false, fakeH1("bad")), Mismatch)

	// It moves the stored tree forward as it learns new records.
	if err := b.Verify(ctx, modY, "v1.0.0", false, fakeH1(modY+" zip")); err != nil {
		t.Fatal(err)
	}
	if n := treeSize(t, db, readKey(t, st, latestKey)); n != 2 {
		t.Errorf("after a second module the stored tree has %d records, want 2", n)
	}
	// And a third verifier sees that too.
	c := newTestVerifier(t, db, st, "")
	if err := c.Verify(ctx, modZ, "v1.0.0", false, fakeH1(modZ+" zip")); err != nil {
		t.Fatal(err)
	}
	if n := treeSize(t, db, readKey(t, st, latestKey)); n != 3 {
		t.Errorf("after a third module the stored tree has %d records, want 3", n)
	}
}

// TestForkDetected checks that a database that presents a tree inconsistent
// with the one stored (same key, different history) is caught, reported
// and counted, and that verification stops.
func TestForkDetected(t *testing.T) {
	for _, tc := range []struct {
		name string
		// second prepares database 2 (same key as database 1).
		second func(t *testing.T, skey, vkey string) *testDB
	}{
		{"reordered", func(t *testing.T, skey, vkey string) *testDB {
			db2 := newTestDB(t, skey, vkey, standardRecords())
			db2.get("/lookup/" + modY + "@v1.0.0") // record 0 is y, not x
			db2.get("/lookup/" + modX + "@v1.0.0")
			return db2
		}},
		{"rehashed", func(t *testing.T, skey, vkey string) *testDB {
			recs := standardRecords()
			recs.add(modX, "v1.0.0", fakeH1("evil zip"), fakeH1("evil mod"))
			db2 := newTestDB(t, skey, vkey, recs)
			db2.get("/lookup/" + modX + "@v1.0.0") // record 0 is x, with other hashes
			return db2
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skey, vkey := testKeys(t)
			db1 := newTestDB(t, skey, vkey, standardRecords())
			st := newDisk(t)
			ctx := context.Background()

			a := newTestVerifier(t, db1, st, "")
			if err := a.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")); err != nil {
				t.Fatal(err)
			}
			latest := readKey(t, st, "sumdb/"+testDBName+"/latest")

			db2 := tc.second(t, skey, vkey)
			sec0, lbl0 := securityErrors(t), verifications(t, "security_error")
			b := newTestVerifier(t, db2, st, "")
			err := b.Verify(ctx, modZ, "v1.0.0", false, fakeH1(modZ+" zip"))
			verifyErr(t, err, Security)
			if !strings.Contains(err.Error(), "SECURITY ERROR") {
				t.Errorf("error %q does not say SECURITY ERROR", err)
			}
			prob := b.SecurityProblem()
			if prob == "" || !strings.Contains(prob, "misbehavior") || strings.Contains(prob, "\n") {
				t.Errorf("SecurityProblem() = %q, want the one-line misbehavior report", prob)
			}
			if d := securityErrors(t) - sec0; d < 1 {
				t.Errorf("modgate_sumdb_security_errors_total went up by %v, want >= 1", d)
			}
			if d := verifications(t, "security_error") - lbl0; d != 1 {
				t.Errorf("verifications{result=security_error} went up by %v, want 1", d)
			}
			// Verification stays stopped: every new lookup fails as a
			// security error, not as something a retry could fix.
			verifyErr(t, b.Verify(ctx, modY, "v1.0.0", true, fakeH1(modY+" mod")), Security)
			verifyErr(t, b.Verify(ctx, "example.com/unknown", "v1.0.0", false, fakeH1("u")), Security)
			// The forked tree was not stored over the good one.
			if got := readKey(t, st, "sumdb/"+testDBName+"/latest"); string(got) != string(latest) {
				t.Errorf("stored tree head changed after the fork:\nbefore %q\nafter  %q", latest, got)
			}
			// The verifier that saw the good database has no complaint.
			if a.SecurityProblem() != "" {
				t.Errorf("verifier A reports %q", a.SecurityProblem())
			}
		})
	}
}

// TestForkAttemptLeavesStateUsable: after a forked database was caught,
// the stored state must still be the honest one, so that a verifier
// pointed at the honest database again (after the operator fixed the
// configuration) verifies new modules.
//
// While checking the forked tree, x/mod's Client authenticates the forked
// database's tiles against its (validly signed) tree and saves them through
// ClientOps.WriteCache before it finds the inconsistency; the verifier must
// not let them land among the verified tiles, or the honest database would
// fail afterwards with "downloaded inconsistent tile".
func TestForkAttemptLeavesStateUsable(t *testing.T) {
	skey, vkey := testKeys(t)
	db1 := newTestDB(t, skey, vkey, standardRecords())
	db2 := newTestDB(t, skey, vkey, standardRecords())
	db2.get("/lookup/" + modY + "@v1.0.0")
	st := newDisk(t)
	ctx := context.Background()

	a := newTestVerifier(t, db1, st, "")
	if err := a.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")); err != nil {
		t.Fatal(err)
	}
	b := newTestVerifier(t, db2, st, "")
	verifyErr(t, b.Verify(ctx, modZ, "v1.0.0", false, fakeH1(modZ+" zip")), Security)
	// Once the database is caught, nothing passes, not even a module whose
	// lookup is cached from before.
	verifyErr(t, b.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")), Security)

	c := newTestVerifier(t, db1, st, "")
	err := c.Verify(ctx, modZ, "v1.0.0", false, fakeH1(modZ+" zip"))
	if err != nil {
		t.Fatalf("back on the honest database: %v", err)
	}
	if c.SecurityProblem() != "" {
		t.Errorf("SecurityProblem() = %q on the honest database", c.SecurityProblem())
	}
}

func TestPrefetchLetsVerifySkipTheDatabase(t *testing.T) {
	skey, vkey := testKeys(t)
	db := newTestDB(t, skey, vkey, standardRecords())
	v := newTestVerifier(t, db, newDisk(t), "corp.example.com")
	ctx := context.Background()

	v.Prefetch(modX, "v1.0.0")
	v.Prefetch("corp.example.com/secret", "v1.0.0") // skipped: never asked
	deadline := time.Now().Add(30 * time.Second)
	for db.count("/lookup/") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the prefetch never reached the database")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Wait for the prefetch to finish (the client then holds the record).
	for len(v.prefetching) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the prefetch did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := db.total()
	if err := v.Verify(ctx, modX, "v1.0.0", true, fakeH1(modX+" mod")); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(ctx, modX, "v1.0.0", false, fakeH1(modX+" zip")); err != nil {
		t.Fatal(err)
	}
	if n := db.total() - before; n != 0 {
		t.Fatalf("verification after a prefetch made %d more requests: %v", n, db.requests())
	}
	if n := db.count("corp.example.com"); n != 0 {
		t.Fatalf("a --nosumdb path was prefetched: %v", db.requests())
	}
}
