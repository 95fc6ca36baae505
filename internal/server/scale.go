package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/modgate/modgate/internal/cache"
	"github.com/modgate/modgate/internal/config"
	"github.com/modgate/modgate/internal/coord"
	coordredis "github.com/modgate/modgate/internal/coord/redis"
	"github.com/modgate/modgate/internal/redact"
	"github.com/modgate/modgate/internal/store"
)

// StoreConfig is the storage the configuration names: the disk under
// --data-dir, or a bucket (--storage s3), for which --data-dir stays this
// replica's scratch space and git mirrors. Offline commands (modgate
// bundle import --config) open the same storage with it.
func StoreConfig(cfg *config.Config) store.Config {
	return store.Config{
		Kind: cfg.Storage,
		Dir:  cfg.DataDir,
		S3: store.S3Config{
			Endpoint:  cfg.S3Endpoint,
			Bucket:    cfg.S3Bucket,
			Prefix:    cfg.S3Prefix,
			Region:    cfg.S3Region,
			PathStyle: cfg.S3PathStyle,
			AccessKey: cfg.S3AccessKey,
			SecretKey: cfg.S3SecretKey,
		},
	}
}

// coordination is what replicas share through Redis (--redis): the locks
// of fetches and refreshes, and the cache's tables of not-found answers,
// query answers and invalidations. Without --redis it is empty and all of
// that stays in this process.
type coordination struct {
	client redis.UniversalClient
	locks  coord.Locks
	tables cache.Tables
}

// redisPrefix starts every key modgate writes to Redis.
const redisPrefix = "modgate:"

func newCoordination(ctx context.Context, cfg *config.Config, log *slog.Logger) (*coordination, error) {
	if cfg.Redis == "" {
		return &coordination{}, nil
	}
	coordredis.SetLogger(log)
	client, err := coordredis.Open(coordredis.Options{
		URL:            cfg.Redis,
		SentinelMaster: cfg.RedisTopology.SentinelMaster,
		SentinelAddrs:  cfg.RedisTopology.SentinelAddrs,
		ClusterAddrs:   cfg.RedisTopology.ClusterAddrs,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Source("redis"), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("%s: cannot reach Redis: %v", cfg.Source("redis"), redactRedis(err))
	}
	return &coordination{
		client: client,
		locks:  coordredis.New(client, redisPrefix+"lock:"),
		tables: coordredis.NewTables(client, redisPrefix),
	}, nil
}

// apply gives the cache what replicas share.
func (c *coordination) apply(cc *cache.Config, lease time.Duration) {
	if c.client == nil {
		return
	}
	cc.Locks = c.locks
	cc.Tables = c.tables
	cc.SharedFlights = true
	cc.Lease = lease
}

func (c *coordination) close() {
	if c != nil && c.client != nil {
		c.client.Close()
	}
}

// redactRedis is a Redis error as one line without credentials: go-redis
// does not quote the URL, but what it wraps may.
func redactRedis(err error) string { return redact.Text(err.Error()) }
