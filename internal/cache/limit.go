package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/modgate/modgate/internal/protocol"
)

// isRateLimited reports whether err is a protocol.RateLimitError. It costs
// nothing for a nil err: the target errors.As needs escapes to the heap, so
// it is declared only when there is an error to look at.
func isRateLimited(err error) bool {
	if err == nil {
		return false
	}
	var limited *protocol.RateLimitError
	return errors.As(err, &limited)
}

// limiter is a token bucket per client (golang.org/x/time/rate), consulted
// only when a lookup must go to the source: a miss or a synchronous refresh,
// never a cache hit or a stale answer refreshed in the background. Clients
// are kept in an LRU, so the set of buckets is bounded; a client evicted
// from it starts again with a full bucket, which an attacker could get only
// by sending from more addresses than the LRU holds.
//
// A lookup that finds what it asked for gives its token back (as a credit
// taken before the bucket's next token): filling the cache for a large
// build from one machine is then not limited by the rate, while lookups of
// things that do not exist, or that fail, are. Every lookup still needs a
// token or a credit when it starts, so one client has at most about twice
// the burst in flight at once.
type limiter struct {
	rate    rate.Limit
	burst   int
	now     func() time.Time
	clients *lru.Cache[string, *bucket]
}

type bucket struct {
	lim *rate.Limiter
	mu  sync.Mutex
	// credit counts tokens given back by lookups that found what they
	// asked for, at most the burst.
	credit int
}

// grant is a lookup's permission to go to the source.
type grant struct{ b *bucket }

// done gives the lookup's token back if it found what it asked for.
func (g grant) done(found bool) {
	if g.b == nil || !found {
		return
	}
	g.b.mu.Lock()
	if g.b.credit < g.b.lim.Burst() {
		g.b.credit++
	}
	g.b.mu.Unlock()
}

func newLimiter(perSecond float64, burst, clients int, now func() time.Time) *limiter {
	if perSecond <= 0 {
		return nil // unlimited
	}
	if burst < 1 {
		burst = 1
	}
	c, err := lru.New[string, *bucket](clients)
	if err != nil {
		panic(err)
	}
	return &limiter{rate: rate.Limit(perSecond), burst: burst, now: now, clients: c}
}

// allow takes a token for one lookup by the client in ctx, or says when to
// retry.
func (l *limiter) allow(ctx context.Context) (grant, error) {
	if l == nil {
		return grant{}, nil
	}
	addr, ok := protocol.ClientAddr(ctx)
	if !ok {
		return grant{}, nil
	}
	id := clientID(addr)
	b, ok := l.clients.Get(id)
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		if prev, found, _ := l.clients.PeekOrAdd(id, b); found {
			b = prev // another request of the same client added it first
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.credit > 0 {
		b.credit--
		return grant{b}, nil
	}
	now := l.now()
	if b.lim.AllowN(now, 1) {
		return grant{b}, nil
	}
	// Time until the bucket holds one whole token again.
	missing := 1 - b.lim.TokensAt(now)
	wait := time.Duration(math.Ceil(missing / float64(l.rate) * float64(time.Second)))
	return grant{}, &protocol.RateLimitError{Client: id, Rate: float64(l.rate), RetryAfter: wait}
}

// clientID is the bucket key of a client address: its IP (an IPv4-mapped
// IPv6 address counts as the IPv4 one, zones are dropped). Anything that is
// not an IP (a Unix socket's "@") is used as is, hashed when long.
func clientID(addr string) string {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	if len(host) > maxClientIDSize {
		sum := sha256.Sum256([]byte(host))
		return hex.EncodeToString(sum[:16])
	}
	return host
}
