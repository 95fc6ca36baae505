package logging

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

type secretValuer struct{}

func (secretValuer) LogValue() slog.Value {
	return slog.StringValue("https://u:valuer-secret@h.example/")
}

func TestRedact(t *testing.T) {
	const secret = "hunter2"
	u, _ := url.Parse("https://user:" + secret + "@proxy.example.com/x")
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		var h slog.Handler = slog.NewJSONHandler(&buf, nil)
		if format == "text" {
			h = slog.NewTextHandler(&buf, nil)
		}
		log := slog.New(Redact(h))
		log = log.With("upstream", "https://user:"+secret+"@proxy.example.com")
		log.WithGroup("g").Info("fetching https://user:"+secret+"@proxy.example.com/m/@v/list",
			"err", fmt.Errorf("get: %w", errors.New(`Get "https://user:`+secret+`@proxy.example.com/m/@v/list": EOF`)),
			"url", u,
			"grp", slog.GroupValue(slog.String("inner", "http://a:"+secret+"@b/")),
			"valuer", secretValuer{},
			"list", []string{"https://x:" + secret + "@y/"},
			"n", 3,
			"plain", "no secrets here",
		)
		out := buf.String()
		for _, s := range []string{secret, "valuer-secret", "user:"} {
			if strings.Contains(out, s) {
				t.Errorf("%s: %q appears in the log line:\n%s", format, s, out)
			}
		}
		for _, s := range []string{"proxy.example.com", "no secrets here", "REDACTED", "3"} {
			if !strings.Contains(out, s) {
				t.Errorf("%s: %q missing from the log line:\n%s", format, s, out)
			}
		}
	}
}

// TestRedactKeepsTypes: values with nothing to hide keep their kind (a
// number stays a number in JSON).
func TestRedactKeepsTypes(t *testing.T) {
	var buf bytes.Buffer
	slog.New(Redact(slog.NewJSONHandler(&buf, nil))).Info("m", "n", 3, "list", []string{"a", "b"}, "ok", true)
	if out := buf.String(); !strings.Contains(out, `"n":3`) || !strings.Contains(out, `"list":["a","b"]`) || !strings.Contains(out, `"ok":true`) {
		t.Errorf("log line %s: values changed type", out)
	}
}
