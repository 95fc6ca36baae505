package prefetch

import (
	"fmt"
	"slices"
	"testing"

	"github.com/modgate/modgate/internal/protocol"
)

// TestFollow: which requirements of a go.mod are prefetched, at the
// client's level (0) and below it.
func TestFollow(t *testing.T) {
	const gomod = `module a.example/a

go %s

require (
	b.example/b v1.2.3
	c.example/c v1.0 // the go command reads it as v1.0.0
	d.example/d v0.0.0
	e.example/e v1.0.0 // indirect
	f.example/f v1.0.0
	g.example/g v2.0.0+incompatible
)

replace d.example/d => ../d
replace (
	f.example/f v1.0 => "./f"
	e.example/e => fork.example/e v1.0.1
	g.example/g v1.9.9 => ./g // another version
)
exclude b.example/b v1.2.3
`
	all := []string{"b.example/b@v1.2.3", "c.example/c@v1.0.0", "e.example/e@v1.0.0", "g.example/g@v2.0.0+incompatible"}
	for _, tc := range []struct {
		goLine string
		level  int
		want   []string
	}{
		{"1.21", 0, all}, // a go.mod a client was served: always followed
		{"1.21", 1, nil}, // pruned, below the client's: not walked by the go command
		{"1.17", 1, nil}, // the first pruned version
		{"1.17rc1", 1, nil},
		{"1.16", 1, all}, // unpruned: walked
		{"1.9", 1, all},
	} {
		data := []byte(fmt.Sprintf(gomod, tc.goLine))
		f := protocol.BytesFile(data)
		next, err := follow(f, job{path: "a.example/a", version: "v1.0.0", level: tc.level})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range next {
			if j.level != tc.level+1 {
				t.Errorf("go %s, level %d: %s@%s at level %d", tc.goLine, tc.level, j.path, j.version, j.level)
			}
			got = append(got, j.path+"@"+j.version)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("go %s, level %d: follow = %q, want %q", tc.goLine, tc.level, got, tc.want)
		}
	}

	// Without a go directive a go.mod is read as go 1.16's: unpruned.
	f := protocol.BytesFile([]byte("module a.example/a\nrequire b.example/b v1.0.0\n"))
	if next, err := follow(f, job{level: 1}); err != nil || len(next) != 1 {
		t.Errorf("no go directive: follow = %v, %v; want b", next, err)
	}
	// One the lax parser refuses has nothing to follow.
	f = protocol.BytesFile([]byte("module a.example/a\nrequire b.example/b master\n"))
	if next, err := follow(f, job{}); err != nil || len(next) != 0 {
		t.Errorf("unparsable: follow = %v, %v; want nothing", next, err)
	}
	// Larger than maxGoModRead: served, not read.
	f = protocol.BytesFile(make([]byte, maxGoModRead+1))
	if next, err := follow(f, job{}); err != nil || len(next) != 0 {
		t.Errorf("huge go.mod: follow = %v, %v; want nothing", next, err)
	}
}
