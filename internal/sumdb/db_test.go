package sumdb

import (
	"crypto/rand"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestParseDB(t *testing.T) {
	_, vkey := testKeys(t)
	tests := []struct {
		spec    string
		want    DB
		wantErr string // substring of the error; "" means success
	}{
		{spec: DefaultName, want: DB{Name: DefaultName, Key: knownKeys[DefaultName], URL: "https://" + DefaultName}},
		{spec: "  " + DefaultName + "  ", want: DB{Name: DefaultName, Key: knownKeys[DefaultName], URL: "https://" + DefaultName}},
		{spec: vkey, want: DB{Name: testDBName, Key: vkey, URL: "https://" + testDBName}},
		{spec: vkey + " http://127.0.0.1:9/db/", want: DB{Name: testDBName, Key: vkey, URL: "http://127.0.0.1:9/db"}},
		{spec: vkey + " https://mirror.example/sumdb/" + testDBName, want: DB{Name: testDBName, Key: vkey, URL: "https://mirror.example/sumdb/" + testDBName}},
		// A known name may be given with a URL too.
		{spec: DefaultName + " https://mirror.example", want: DB{Name: DefaultName, Key: knownKeys[DefaultName], URL: "https://mirror.example"}},

		{spec: "", wantErr: "want"},
		{spec: "a b c", wantErr: "want"},
		{spec: "sum.example.com", wantErr: "unknown name"},
		{spec: testDBName + "+deadbeef+notbase64!", wantErr: "invalid key"},
		{spec: testDBName + "+1234", wantErr: "invalid key"},
		{spec: vkey[:len(vkey)-4], wantErr: "invalid key"},
		{spec: vkey + " ftp://mirror.example", wantErr: "invalid URL"},
		{spec: vkey + " mirror.example", wantErr: "invalid URL"},
		{spec: vkey + " http://", wantErr: "invalid URL"},
	}
	// Names the go command refuses too, with keys that are otherwise valid.
	for _, name := range []string{"sumdb.example/../x", "sumdb.example//x", "sumdb.example/", "sumdb.example?x", "sumdb.example#x", "user@sumdb.example"} {
		_, k, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			spec    string
			want    DB
			wantErr string
		}{spec: k, wantErr: "must be host[/path]"})
	}
	tests = append(tests, []struct {
		spec    string
		want    DB
		wantErr string
	}{
		{spec: vkey + " http://127.0.0.1:9/db//", want: DB{Name: testDBName, Key: vkey, URL: "http://127.0.0.1:9/db"}},
		{spec: vkey + " https://mirror.example/db?token=x", wantErr: "invalid URL"},
		{spec: vkey + " https://mirror.example/db#x", wantErr: "invalid URL"},
		{spec: vkey + " https://mirror.example/db?", wantErr: "invalid URL"},
	}...)
	for _, tt := range tests {
		got, err := ParseDB(tt.spec)
		if tt.wantErr != "" {
			if err == nil {
				t.Errorf("ParseDB(%q) = %+v, want an error containing %q", tt.spec, got, tt.wantErr)
			} else if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDB(%q) error = %q, want it to contain %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDB(%q): %v", tt.spec, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseDB(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
}

// TestParseDBErrorHidesCredentials: a refused URL may hold credentials.
func TestParseDBErrorHidesCredentials(t *testing.T) {
	_, vkey := testKeys(t)
	_, err := ParseDB(vkey + " ftp://user:s3cr3t@mirror.example/db")
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("ParseDB error = %v, want one without the password", err)
	}
}
