package config

import "errors"

// RedisTopology is the redis-topology section: where the Redis servers
// are when they are not the one server of --redis.
type RedisTopology struct {
	// SentinelMaster and SentinelAddrs find the master through Sentinel.
	SentinelMaster string
	SentinelAddrs  []string
	// ClusterAddrs are seed nodes of a Redis Cluster.
	ClusterAddrs []string
}

func (r *RedisTopology) fields() []*option {
	return []*option{
		opt(&r.SentinelMaster, "sentinel-master", stringKind, "", "name of the master the Sentinels watch"),
		opt(&r.SentinelAddrs, "sentinel-addrs", stringListKind, nil, "Sentinel addresses, host:port"),
		opt(&r.ClusterAddrs, "cluster-addrs", stringListKind, nil, "Redis Cluster seed nodes, host:port"),
	}
}

func checkRedisTopology(r *RedisTopology) error {
	switch {
	case len(r.ClusterAddrs) > 0 && (r.SentinelMaster != "" || len(r.SentinelAddrs) > 0):
		return errors.New("choose Sentinel or Cluster, not both")
	case (r.SentinelMaster == "") != (len(r.SentinelAddrs) == 0):
		return errors.New("sentinel-master and sentinel-addrs go together")
	}
	return nil
}
