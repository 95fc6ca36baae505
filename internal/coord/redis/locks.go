package coordredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/modgate/modgate/internal/coord"
)

// Locks is a coord.Locks on Redis. A lock is the key <prefix>lock:<key>
// holding the holder's random token, set with NX and a PX expiry: Redis's
// own clock expires the lease of a holder that died. Renew and Release are
// scripts that act only while the key still holds the caller's token, so a
// holder whose lease expired can neither extend nor free the next
// holder's.
//
// On a Sentinel group, a lock written to a master that fails before its
// replica copied it is lost in the failover: another replica may then take
// it at once. That duplicates a fetch, which coordination in modgate may
// do (package coord). One Redis is not Redlock, and need not be.
type Locks struct {
	client redis.UniversalClient
	prefix string
}

var _ coord.Locks = (*Locks)(nil)

// New returns Locks on client, whose keys all begin with prefix (e.g.
// "modgate:"), so that one Redis can serve several installations.
func New(client redis.UniversalClient, prefix string) *Locks {
	return &Locks{client: client, prefix: prefix}
}

// renewScript extends the lease if the key still holds the caller's token.
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
`)

// releaseScript deletes the key if it still holds the caller's token.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

var errBadTTL = errors.New("coordredis: lease time must be at least a millisecond")

// millis returns ttl in whole milliseconds, rounded up: PX counts them.
func millis(ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, errBadTTL
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond), nil
}

// TryLock implements coord.Locks.
func (l *Locks) TryLock(ctx context.Context, key string, ttl time.Duration) (coord.Lease, bool, error) {
	ms, err := millis(ttl)
	if err != nil {
		return nil, false, err
	}
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	token := hex.EncodeToString(b[:])
	rkey := keyJoin(l.prefix, "lock", key)
	ok, err := l.client.SetNX(ctx, rkey, token, time.Duration(ms)*time.Millisecond).Result()
	if err != nil {
		return nil, false, fmt.Errorf("redis: taking lock %s: %w", key, err)
	}
	if !ok {
		return nil, false, nil
	}
	return &lease{l: l, key: key, rkey: rkey, token: token}, true, nil
}

// lease is one holding of a lock, known by its token.
type lease struct {
	l     *Locks
	key   string // for errors
	rkey  string
	token string
}

// Renew implements coord.Lease.
func (e *lease) Renew(ctx context.Context, ttl time.Duration) error {
	ms, err := millis(ttl)
	if err != nil {
		return err
	}
	n, err := renewScript.Run(ctx, e.l.client, []string{e.rkey}, e.token, ms).Int()
	if err != nil {
		return fmt.Errorf("redis: renewing lease of %s: %w", e.key, err)
	}
	if n == 0 {
		return coord.ErrLeaseLost
	}
	return nil
}

// Release implements coord.Lease.
func (e *lease) Release(ctx context.Context) error {
	n, err := releaseScript.Run(ctx, e.l.client, []string{e.rkey}, e.token).Int()
	if err != nil {
		return fmt.Errorf("redis: releasing lease of %s: %w", e.key, err)
	}
	if n == 0 {
		return coord.ErrLeaseLost
	}
	return nil
}
