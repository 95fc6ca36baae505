package prefetch

import "context"

// WaitIdle waits until no prefetch is queued or running: tests assert
// what was, and was not, prefetched once the whole walk is over.
func (m *Modules) WaitIdle(ctx context.Context) error { return m.waitIdle(ctx) }
