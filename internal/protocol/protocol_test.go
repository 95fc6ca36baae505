package protocol

import (
	"io"
	"strings"
	"testing"
	"time"
)

func versions(s string) []Version {
	var vs []Version
	for _, v := range strings.Fields(s) {
		vs = append(vs, Version{Version: v})
	}
	return vs
}

func TestPickLatest(t *testing.T) {
	for _, tc := range []struct{ tagged, pseudo, want string }{
		{"v1.0.0 v1.1.0 v2.0.0-rc1", "", "v1.1.0"},
		{"v0.1.0-a v0.1.0-b", "v0.0.0-20240101000000-abcdefabcdef", "v0.1.0-b"},
		{"v1.0.0", "", "v1.0.0"},
		{"v1.0.0-rc.1 v1.0.0 v1.0.1-rc.1", "v1.0.1-0.20240101000000-abcdefabcdef", "v1.0.0"},
		{"", "v0.0.0-20230101000000-abcdefabcdef v0.0.0-20240101000000-abcdefabcdef", "v0.0.0-20240101000000-abcdefabcdef"},
		{"", "", ""},
	} {
		vs := &Versions{Tagged: versions(tc.tagged), Pseudo: versions(tc.pseudo)}
		if got := PickLatest(vs); got != tc.want {
			t.Errorf("PickLatest(%q, %q) = %q, want %q", tc.tagged, tc.pseudo, got, tc.want)
		}
	}
}

// TestListFileKeepsTimes checks the @v/list file: tagged versions only, one
// per line, each with the time its origin gave, in a form the go command
// parses (it reads the second field with time.RFC3339).
func TestListFileKeepsTimes(t *testing.T) {
	when := time.Date(2019, 3, 1, 12, 30, 0, 0, time.UTC)
	east := time.Date(2020, 5, 6, 7, 8, 9, 500, time.FixedZone("", 2*3600))
	vs := &Versions{
		Tagged:     []Version{{Version: "v1.0.0", Time: when}, {Version: "v1.1.0"}, {Version: "v1.2.0", Time: east}},
		Pseudo:     versions("v1.2.1-0.20240101000000-abcdefabcdef"),
		Provenance: Provenance{Stored: true, Origin: "https://proxy.example", Fetched: when},
	}
	f := vs.File()
	defer f.Content.Close()
	body, err := io.ReadAll(f.Content)
	if err != nil {
		t.Fatal(err)
	}
	want := "v1.0.0 2019-03-01T12:30:00Z\nv1.1.0\nv1.2.0 2020-05-06T07:08:09.0000005+02:00\n"
	if string(body) != want {
		t.Fatalf("list file:\n%s\nwant\n%s", body, want)
	}
	if f.Size != int64(len(want)) || !f.Mutable || f.Degraded || f.Provenance != vs.Provenance {
		t.Errorf("list file %+v: want size %d, mutable, not degraded, the list's provenance", f, len(want))
	}
	for i, line := range strings.Split(strings.TrimSuffix(want, "\n"), "\n") {
		fields := strings.Fields(line)
		if fields[0] != vs.Tagged[i].Version {
			t.Errorf("line %q: first field is not %s", line, vs.Tagged[i].Version)
		}
		if len(fields) == 2 {
			got, err := time.Parse(time.RFC3339, fields[1])
			if err != nil || !got.Equal(vs.Tagged[i].Time) {
				t.Errorf("line %q: time %v, %v; want %v", line, got, err, vs.Tagged[i].Time)
			}
		}
	}
	vs.Degraded = true
	if !vs.File().Degraded {
		t.Error("the file of a degraded list is not degraded")
	}
}

func TestIsCanonical(t *testing.T) {
	for _, tc := range []struct {
		path, version string
		want          bool
	}{
		{"example.com/m", "v1.0.0", true},
		{"example.com/m", "v0.0.0-20240101000000-abcdefabcdef", true},
		{"example.com/m", "v1.0", false},   // not canonical
		{"example.com/m", "main", false},   // a query
		{"example.com/m", "v2.0.0", false}, // v2 needs /v2
		{"example.com/m/v2", "v2.0.0", true},
		{"example.com/m", "v2.0.0+incompatible", true}, // no go.mod: allowed without /v2
	} {
		if got := IsCanonical(tc.path, tc.version); got != tc.want {
			t.Errorf("IsCanonical(%s, %s) = %v, want %v", tc.path, tc.version, got, tc.want)
		}
	}
}

func TestBytesFile(t *testing.T) {
	f := BytesFile([]byte("hello"))
	if f.Size != 5 {
		t.Fatalf("Size = %d", f.Size)
	}
	if n, err := f.Content.Seek(0, io.SeekEnd); n != 5 || err != nil {
		t.Fatalf("Seek(end) = %d, %v", n, err)
	}
	f.Content.Seek(1, io.SeekStart)
	b, err := io.ReadAll(f.Content)
	if string(b) != "ello" || err != nil || f.Content.Close() != nil {
		t.Fatalf("read %q, %v", b, err)
	}
}
