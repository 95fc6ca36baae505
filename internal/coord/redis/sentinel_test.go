package coordredis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordredis "github.com/modgate/modgate/internal/coord/redis"
	"github.com/modgate/modgate/internal/testenv/redisserver"
)

// TestSentinel: a client opened with SentinelMaster and SentinelAddrs
// finds the master through a real sentinel, and locks and tables work
// through it; when the master dies, the sentinel promotes the replica and
// the same client carries on against the new master.
func TestSentinel(t *testing.T) {
	master := redisserver.Start(t)
	replica := redisserver.StartOptions(t, redisserver.Options{ReplicaOf: master.Addr})
	waitUntil(t, 15*time.Second, "the replica in sync", func() bool {
		info, _ := replica.Command("INFO", "replication")
		return strings.Contains(info, "master_link_status:up")
	})
	const name = "modgate-master"
	sentinel := redisserver.StartOptions(t, redisserver.Options{Sentinel: &redisserver.Watch{Name: name, Addr: master.Addr}})
	waitUntil(t, 15*time.Second, "the sentinel aware of the replica", func() bool {
		info, _ := sentinel.Command("INFO", "sentinel")
		return strings.Contains(info, "name="+name+",status=ok,address="+master.Addr+",slaves=1")
	})

	c := open(t, coordredis.Options{URL: "redis:///0", SentinelMaster: name, SentinelAddrs: []string{sentinel.Addr}})
	ctx := context.Background()
	locks := coordredis.New(c, prefix())
	tables := coordredis.NewTables(c, prefix())
	use := func(lockKey string, tableKey byte) error {
		lease, ok, err := locks.TryLock(ctx, lockKey, time.Minute)
		if err != nil || !ok {
			return fmt.Errorf("TryLock %s: %v, %v", lockKey, ok, err)
		}
		if err := lease.Release(ctx); err != nil {
			return err
		}
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := tables.Invalidations.Put(ctx, [32]byte{tableKey}, at, time.Minute); err != nil {
			return err
		}
		if got, err := tables.Invalidations.Get(ctx, [32]byte{tableKey}); err != nil || !got.Equal(at) {
			return fmt.Errorf("invalidation read back as %v, %v", got, err)
		}
		return nil
	}
	if err := use("before", 1); err != nil {
		t.Fatalf("through the sentinel's master: %v", err)
	}
	if n, err := master.Command("DBSIZE"); err != nil || n == ":0" {
		t.Fatalf("the master holds %q keys (%v): the client did not write to it", n, err)
	}

	master.Kill()
	waitUntil(t, 30*time.Second, "the sentinel to promote the replica", func() bool {
		info, _ := sentinel.Command("INFO", "sentinel")
		return strings.Contains(info, "address="+replica.Addr)
	})
	// The client's connections to the dead master fail until it asks the
	// sentinel again; it must get there by itself.
	var err error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = use("after", 2); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the failover: %v", err)
	}
	if info, _ := replica.Command("INFO", "replication"); !strings.Contains(info, "role:master") {
		t.Errorf("the promoted server says %q", info)
	}
}

func waitUntil(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
	}
}
