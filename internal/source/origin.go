package source

import (
	"context"
	"sync"
)

// Origin records which origin of a chain answered a fetch, so that a caller
// that finds the answer invalid can name the origin that sent it rather than
// the whole chain. It is carried in the fetch's context (WithOrigin) because
// every Source method already takes one; sources that are not chains leave
// it empty.
type Origin struct {
	mu   sync.Mutex
	name string
}

type originKey struct{}

// WithOrigin returns a context whose chain fetches record their answering
// origin in the returned Origin.
func WithOrigin(ctx context.Context) (context.Context, *Origin) {
	o := &Origin{}
	return context.WithValue(ctx, originKey{}, o), o
}

// setOrigin records name as the origin that answered, if ctx asks for it.
func setOrigin(ctx context.Context, name string) {
	if o, ok := ctx.Value(originKey{}).(*Origin); ok {
		o.mu.Lock()
		o.name = name
		o.mu.Unlock()
	}
}

// String returns the (credential-free) name of the origin that answered
// last, or "" when none did or the source was not a chain.
func (o *Origin) String() string {
	if o == nil {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.name
}
