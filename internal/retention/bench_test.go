package retention

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/store"
)

// BenchmarkPlan10000Versions: what a retention pass costs before it
// removes anything, on a disk store of 2,000 modules with 5 versions each
// (three files a version), when half of it has to go: the walk of the
// store, the usage records of the candidates, the ordering.
func BenchmarkPlan10000Versions(b *testing.B) {
	ctx := context.Background()
	st, err := store.NewDisk(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	zip := strings.Repeat("z", 4096)
	var total int64
	for m := range 2000 {
		for v := range 5 {
			path, version := fmt.Sprintf("example.com/org%d/mod%d", m%50, m), fmt.Sprintf("v1.%d.0", v)
			for ext, data := range map[string]string{"info": `{"Version":"` + version + `"}`, "mod": "module " + path + "\n", "zip": zip} {
				key, err := store.VersionKey(path, version, ext)
				if err != nil {
					b.Fatal(err)
				}
				if err := st.Put(ctx, key, strings.NewReader(data)); err != nil {
					b.Fatal(err)
				}
				total += int64(len(data))
			}
		}
	}
	now := time.Now().Add(time.Hour) // nothing is within the recent guard
	b.ResetTimer()
	for b.Loop() {
		e, err := Plan(ctx, st, total/2, now, Options{})
		if err != nil || !e.Fits() || len(e.Remove) == 0 {
			b.Fatalf("plan: %v, fits %v, %d versions", err, e.Fits(), len(e.Remove))
		}
	}
}
