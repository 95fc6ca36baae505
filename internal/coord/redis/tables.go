package coordredis

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/modgate/modgate/internal/cache"
)

// NewTables returns the cache's tables on client, shared by every replica
// that uses the same Redis and prefix. Each entry is one key,
// <prefix><table>:<hex of the cache's hashed key>, with a PX expiry of the
// retention the cache asks for, holding a small JSON document (a not-found
// answer, at most ~0.7 KiB; a query answer, at most ~6 KiB) or a time (an
// invalidation). The cache checks entries' TTLs itself against its clock;
// Redis's clock only decides when they are dropped.
func NewTables(client redis.UniversalClient, prefix string) cache.Tables {
	return cache.Tables{
		NotFound:      jsonTable[cache.NotFound]{client: client, prefix: prefix, name: "notfound"},
		Queries:       jsonTable[cache.QueryAnswer]{client: client, prefix: prefix, name: "query"},
		Invalidations: invalidationTable{client: client, prefix: prefix},
	}
}

// maxValue bounds what the tables read back: larger values were not
// written by them.
const maxValue = 64 << 10

func tableKey(prefix, table string, key cache.TableKey) string {
	return keyJoin(prefix, table, hex.EncodeToString(key[:]))
}

// keepMillis is a retention as PX wants it: whole milliseconds, at least one.
func keepMillis(keep time.Duration) time.Duration {
	return max(keep.Round(time.Millisecond), time.Millisecond)
}

// getJSON reads the JSON value of rkey into v; ok is false if there is none.
func getJSON(ctx context.Context, c redis.UniversalClient, rkey string, v any) (ok bool, err error) {
	data, err := c.Get(ctx, rkey).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redis: reading %s: %w", rkey, err)
	}
	if len(data) > maxValue {
		return false, fmt.Errorf("redis: %s holds %d bytes, more than any entry", rkey, len(data))
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("redis: %s holds no entry: %v", rkey, err)
	}
	return true, nil
}

func setJSON(ctx context.Context, c redis.UniversalClient, rkey string, v any, keep time.Duration) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := c.Set(ctx, rkey, data, keepMillis(keep)).Err(); err != nil {
		return fmt.Errorf("redis: writing %s: %w", rkey, err)
	}
	return nil
}

func del(ctx context.Context, c redis.UniversalClient, rkey string) error {
	if err := c.Del(ctx, rkey).Err(); err != nil {
		return fmt.Errorf("redis: deleting %s: %w", rkey, err)
	}
	return nil
}

// jsonTable is a cache table (cache.NotFoundTable, cache.QueryTable) on
// Redis: each entry one key of the table's name, holding the entry as a
// JSON document.
type jsonTable[V any] struct {
	client redis.UniversalClient
	prefix string
	name   string // "notfound", "query"
}

func (t jsonTable[V]) Get(ctx context.Context, key cache.TableKey) (V, bool, error) {
	var v V
	ok, err := getJSON(ctx, t.client, tableKey(t.prefix, t.name, key), &v)
	return v, ok, err
}

func (t jsonTable[V]) Put(ctx context.Context, key cache.TableKey, v V, keep time.Duration) error {
	return setJSON(ctx, t.client, tableKey(t.prefix, t.name, key), v, keep)
}

func (t jsonTable[V]) Remove(ctx context.Context, key cache.TableKey) error {
	return del(ctx, t.client, tableKey(t.prefix, t.name, key))
}

// invalidationTable is cache.InvalidationTable on Redis. A time is kept as
// its Unix nanoseconds in 20 zero-padded digits, so that the script can
// compare two times as strings (Lua's numbers are doubles, too coarse for
// nanoseconds).
type invalidationTable struct {
	client redis.UniversalClient
	prefix string
}

// laterScript sets the key to ARGV[1] unless it holds a later time already.
var laterScript = redis.NewScript(`
local cur = redis.call("GET", KEYS[1])
if cur and cur >= ARGV[1] then
	return 0
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1
`)

const timeDigits = 20

func (t invalidationTable) Get(ctx context.Context, key cache.TableKey) (time.Time, error) {
	rkey := tableKey(t.prefix, "invalidated", key)
	s, err := t.client.Get(ctx, rkey).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("redis: reading %s: %w", rkey, err)
	}
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil || len(s) != timeDigits {
		return time.Time{}, fmt.Errorf("redis: %s holds no time", rkey)
	}
	return time.Unix(0, ns), nil
}

func (t invalidationTable) Put(ctx context.Context, key cache.TableKey, at time.Time, keep time.Duration) error {
	rkey := tableKey(t.prefix, "invalidated", key)
	ns := max(at.UnixNano(), 0) // before 1970 sorts first anyway
	v := fmt.Sprintf("%0*d", timeDigits, ns)
	if err := laterScript.Run(ctx, t.client, []string{rkey}, v, keepMillis(keep).Milliseconds()).Err(); err != nil {
		return fmt.Errorf("redis: writing %s: %w", rkey, err)
	}
	return nil
}
