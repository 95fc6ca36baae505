// Package logging holds modgate's slog plumbing.
package logging

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/modgate/modgate/internal/redact"
)

// Redact wraps h so that the message and every string, error, Stringer and
// other value of a record pass through redact.Text before h sees them.
//
// Code that logs a URL or an error from outside is meant to redact it
// itself; this is the net under it, for the error text of a library that
// quotes a URL, the attribute someone adds later. It costs only when a
// line is actually logged, and little then: redact.Text returns at once
// for text without "://".
func Redact(h slog.Handler) slog.Handler { return redactHandler{h} }

type redactHandler struct{ h slog.Handler }

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, redact.Text(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(a)
	}
	return redactHandler{r.h.WithAttrs(red)}
}

func (r redactHandler) WithGroup(name string) slog.Handler { return redactHandler{r.h.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, redact.Text(v.String()))
	case slog.KindGroup:
		group := v.Group()
		red := make([]slog.Attr, len(group))
		for i, g := range group {
			red[i] = redactAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, redact.Text(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, redact.Text(x.String()))
		default:
			// Structs, maps, slices: the handler would print them as they
			// are; replace them by their text only when that hides
			// something.
			s := fmt.Sprintf("%+v", x)
			if r := redact.Text(s); r != s {
				return slog.String(a.Key, r)
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
