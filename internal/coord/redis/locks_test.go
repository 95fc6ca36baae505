package coordredis_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/modgate/modgate/internal/coord"
	"github.com/modgate/modgate/internal/coord/coordtest"
	coordredis "github.com/modgate/modgate/internal/coord/redis"
	"github.com/modgate/modgate/internal/testenv"
	"github.com/modgate/modgate/internal/testenv/redisserver"
)

// open returns a client for url, closed when the test ends.
func open(t *testing.T, opts coordredis.Options) redis.UniversalClient {
	t.Helper()
	c, err := coordredis.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var prefixes atomic.Int64

// prefix returns a key prefix no other test uses: a namespace of its own
// on a shared server.
func prefix() string { return fmt.Sprintf("test%d:", prefixes.Add(1)) }

// TestCompliance runs coord's compliance suite against a real Redis, whose
// own clock expires the leases: Advance sleeps. Leases of seconds outlive
// a test step on a loaded machine; the tests that sleep (3.8 TTL in all)
// overlap, two at a time under -parallel 2: each has a key prefix of its
// own.
func TestCompliance(t *testing.T) {
	srv := redisserver.Start(t)
	c := open(t, coordredis.Options{URL: srv.URL})
	coordtest.Run(t, coordtest.Harness{
		NewLocks: func(t *testing.T) coord.Locks { return coordredis.New(c, prefix()) },
		Advance:  time.Sleep,
		TTL:      4 * time.Second,
		Parallel: true,
	})
}

// holderEnv names the Redis URL and key prefix a helper process locks
// under, when the test binary runs as one (runHolder).
const holderEnv = "COORDREDIS_HOLDER"

// holderLease is the lease of the helper process's lock, renewed every
// third of it: seconds, so that neither a helper renewing late nor the
// test reading the lease after the kill loses it on a loaded machine.
const holderLease = 3 * time.Second

// runHolder is what the test binary does when TestKilledHolder runs it
// as a helper process (holderEnv set; TestMain calls it): take a lock
// through a coord.Group, say so, and hold it, renewing, until killed.
func runHolder(env string) {
	url, pfx, _ := strings.Cut(env, " ")
	c, err := coordredis.Open(coordredis.Options{URL: url})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	g := coord.NewGroup(coord.GroupConfig{Locks: coordredis.New(c, pfx), Lease: holderLease})
	g.Do(context.Background(), "k", func(ctx context.Context) error {
		fmt.Println("holding")
		select {}
	})
}

// TestKilledHolder: a process holding a lock keeps it by renewing its
// lease for longer than one lease time; once it is killed (SIGKILL, no
// release), another takes the lock after at most one lease time.
func TestKilledHolder(t *testing.T) {
	srv := redisserver.Start(t)
	c := open(t, coordredis.Options{URL: srv.URL})
	pfx := prefix()
	locks := coordredis.New(c, pfx)

	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holderEnv+"="+srv.URL+" "+pfx)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("helper process said %q, %v; want holding", line, err)
	}

	held := time.Now() // the helper took the lock before it said so
	ctx := context.Background()
	// Held for longer than one lease time: the holder renews. The last
	// TryLock is sent more than holderLease after the lock was taken.
	for {
		sent := time.Now()
		if _, ok, err := locks.TryLock(ctx, "k", time.Minute); err != nil || ok {
			t.Fatalf("TryLock %v after the helper took the lock: ok %v, err %v; want it held", sent.Sub(held), ok, err)
		}
		if sent.Sub(held) > holderLease {
			break
		}
		time.Sleep(holderLease / 4)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	pttl, err := c.PTTL(ctx, pfx+"lock:k").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= 0 || pttl > holderLease {
		t.Fatalf("the dead holder's lock expires in %v, want within its lease %v", pttl, holderLease)
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lease, err := coord.Lock(lctx, locks, "k", time.Minute)
	if err != nil {
		t.Fatalf("the lock of a killed holder was not taken over: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Error(err)
	}
}

// TestRedisRestarted: a Redis that comes back empty has forgotten every
// lease; their holders learn it as ErrLeaseLost, and new locks work on the
// same client.
func TestRedisRestarted(t *testing.T) {
	srv := redisserver.Start(t)
	c := open(t, coordredis.Options{URL: srv.URL})
	locks := coordredis.New(c, prefix())
	ctx := context.Background()
	lease, ok, err := locks.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock: %v, %v", ok, err)
	}
	srv.Restart()
	if err := lease.Renew(ctx, time.Minute); !errors.Is(err, coord.ErrLeaseLost) {
		t.Errorf("Renew after a restart: %v, want ErrLeaseLost", err)
	}
	if err := lease.Release(ctx); !errors.Is(err, coord.ErrLeaseLost) {
		t.Errorf("Release after a restart: %v, want ErrLeaseLost", err)
	}
	next, ok, err := locks.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock after a restart: %v, %v", ok, err)
	}
	if err := next.Release(ctx); err != nil {
		t.Error(err)
	}
}

// TestRedisDown: with Redis unreachable, every call fails with an error
// that says what failed and where (not ErrLeaseLost: the lease may still
// be held), and nothing panics.
func TestRedisDown(t *testing.T) {
	srv := redisserver.Start(t)
	c := open(t, coordredis.Options{URL: srv.URL + "?max_retries=0&pool_size=1"})
	locks := coordredis.New(c, prefix())
	ctx := context.Background()
	lease, ok, err := locks.TryLock(ctx, "k", time.Minute)
	if err != nil || !ok {
		t.Fatalf("TryLock: %v, %v", ok, err)
	}
	srv.Kill()
	check := func(what string, err error) {
		t.Helper()
		if err == nil || errors.Is(err, coord.ErrLeaseLost) {
			t.Fatalf("%s with Redis down: %v, want an error other than ErrLeaseLost", what, err)
		}
		if !strings.Contains(err.Error(), "redis: ") || !strings.Contains(err.Error(), srv.Addr) {
			t.Errorf("%s with Redis down: %q does not say it is Redis at %s that failed", what, err, srv.Addr)
		}
	}
	_, _, err = locks.TryLock(ctx, "k2", time.Minute)
	check("TryLock", err)
	check("Renew", lease.Renew(ctx, time.Minute))
	check("Release", lease.Release(ctx))

	// A Group over Locks that fail runs its calls without exclusion across
	// processes: coordination saves work, it must not stop it.
	g := coord.NewGroup(coord.GroupConfig{Locks: locks, Logger: testenv.Logger(t, "group")})
	defer g.Close()
	ran := false
	err = g.Do(ctx, "k3", func(context.Context) error { ran = true; return nil })
	if err != nil || !ran {
		t.Errorf("Do with Redis down: %v (ran: %v); want the call run", err, ran)
	}
}
