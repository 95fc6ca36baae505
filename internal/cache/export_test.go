package cache

import "sync"

// NewWithLimits is New with the sizes of the in-memory tables chosen by the
// test, so that their bounds can be observed.
func NewWithLimits(cfg Config, negative, queries, clients int) *Modules {
	return newModules(cfg, limits{negative: negative, queries: queries, clients: clients})
}

// TableLens returns how many entries the in-memory tables hold.
func (m *Modules) TableLens() (negative, queries, clients int) {
	if m.limit != nil {
		clients = m.limit.clients.Len()
	}
	return m.neg.t.(*memTable[NotFound]).lru.Len(), m.queries.t.(*memTable[QueryAnswer]).lru.Len(), clients
}

// WaitHashed waits until the background hasher has no zip queued or being
// hashed.
func (m *Modules) WaitHashed() { m.hasher.wait() }

// HoldHashing makes the background hasher wait before each zip until
// release is called. Call it before the first zip is fetched.
func (m *Modules) HoldHashing() (release func()) {
	gate := make(chan struct{})
	m.hasher.gate = gate
	return sync.OnceFunc(func() { close(gate) })
}
