package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://proxy.example", "https://proxy.example"},
		{"https://user:secret@proxy.example/base", "https://REDACTED@proxy.example/base"},
		{"https://tokenonly@proxy.example", "https://REDACTED@proxy.example"},
		{"https://proxy.example/x?access_token=abc&v=1", "https://proxy.example/x?access_token=REDACTED&v=1"},
		{"https://s3.example/b/k?X-Amz-Signature=abc&X-Amz-Credential=def", "https://s3.example/b/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"},
		{"redis://:pw@127.0.0.1:6379/0", "redis://REDACTED@127.0.0.1:6379/0"},
		{"http://u:p%zz@host/", "http://REDACTED@host/"},
		{"not a url", "not a url"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIdempotentAndPunctuation(t *testing.T) {
	for _, in := range []string{
		"https://u:p@host/x?a=%zz&token=t",
		"https://host/x?token=t",
		"https://u@host",
		"https://host/x?REDACTED=REDACTED",
	} {
		once := URL(in)
		if twice := URL(once); twice != once {
			t.Errorf("URL(URL(%q)) = %q, URL once = %q", in, twice, once)
		}
	}
	got := Text("404 (https://proxy.example/m/@v/list?token=abc): module host not permitted.")
	want := "404 (https://proxy.example/m/@v/list?token=REDACTED): module host not permitted."
	if got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func TestTextAndLine(t *testing.T) {
	in := `Get "http://alice:hunter2@10.0.0.1:3128/github.com/x/@v/list": dial tcp: i/o timeout` + "\nsecond line\x1b[31m"
	got := Line(in, 0)
	if strings.Contains(got, "hunter2") || strings.Contains(got, "alice") || strings.ContainsAny(got, "\n\x1b") {
		t.Fatalf("Line = %q", got)
	}
	if !strings.Contains(got, "REDACTED@10.0.0.1:3128") || !strings.Contains(got, "second line") {
		t.Fatalf("Line = %q", got)
	}
	long := Line(strings.Repeat("é", 300), 101)
	if len(long) > 104 || !strings.HasSuffix(long, "...") || strings.ContainsRune(long, '\uFFFD') {
		t.Fatalf("cut = %q (%d bytes)", long, len(long))
	}
}

func FuzzLine(f *testing.F) {
	f.Add("https://user:pw@host/x?token=t", 80)
	f.Add("plain", 3)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1<<16 {
			return
		}
		out := Line(s, max)
		if again := Text(out); again != out && max == 0 {
			t.Fatalf("Line(%q) = %q is changed by Text again: %q", s, out, again)
		}
		if strings.ContainsAny(out, "\n\r") {
			t.Fatalf("Line(%q) has a line break: %q", s, out)
		}
		if max > 0 && len(out) > max+3 {
			t.Fatalf("Line(%q, %d) is %d bytes", s, max, len(out))
		}
	})
}
