package testenv

import (
	"strings"
	"sync"
)

// RequestLog records the paths of requests that reached a test server, so
// tests can count what got through (or prove that nothing did).
type RequestLog struct {
	mu    sync.Mutex
	paths []string
}

// Add records one request path.
func (l *RequestLog) Add(path string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.paths = append(l.paths, path)
}

// Count returns how many recorded paths contain substr.
func (l *RequestLog) Count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.paths {
		if strings.Contains(p, substr) {
			n++
		}
	}
	return n
}

// Total returns how many requests were recorded.
func (l *RequestLog) Total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.paths)
}

// Paths returns the recorded paths in order.
func (l *RequestLog) Paths() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.paths...)
}
