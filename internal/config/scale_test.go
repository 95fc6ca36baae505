package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestScaleSettings(t *testing.T) {
	noGoEnv(t)
	path := writeFile(t, "m.yaml", `
storage: s3
s3-endpoint: http://127.0.0.1:7070
s3-bucket: modules
s3-prefix: modgate/
s3-path-style: true
redis: redis://:pw@127.0.0.1:6379/2
redis-topology:
  sentinel-master: mymaster
  sentinel-addrs: [10.0.0.1:26379, 10.0.0.2:26379]
`)
	c, err := LoadEnviron([]string{"--config", path}, []string{"MODGATE_S3_ACCESS_KEY=AK", "MODGATE_S3_SECRET_KEY=SK", "MODGATE_TOKEN=client-side", "GOPROXY=https://proxy.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage != "s3" || c.S3Endpoint != "http://127.0.0.1:7070" || c.S3Bucket != "modules" || c.S3Prefix != "modgate/" ||
		!c.S3PathStyle || c.S3Region != "us-east-1" || c.S3AccessKey != "AK" || c.S3SecretKey != "SK" || c.Redis != "redis://:pw@127.0.0.1:6379/2" {
		t.Errorf("scale settings: %+v", c)
	}
	if want := (RedisTopology{SentinelMaster: "mymaster", SentinelAddrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"}}); !reflect.DeepEqual(c.RedisTopology, want) {
		t.Errorf("redis-topology = %+v", c.RedisTopology)
	}
}

func TestScaleSettingsInvalid(t *testing.T) {
	noGoEnv(t)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--storage", "s3"}, nil, "--storage s3 needs --s3-bucket"},
		{[]string{"--storage", "gcs"}, nil, "storage"},
		{[]string{"--redis", "http://:TOPSECRET@h:6379"}, nil, "want redis://"},
		{[]string{"--s3-endpoint", "https://AK:TOPSECRET@s3.example.com"}, nil, "credentials belong in MODGATE_S3_ACCESS_KEY"},
		{nil, map[string]string{"MODGATE_S3_ACCESS_KEY": "AK"}, "must be set together"},
	} {
		_, err := Load(tc.args, env(tc.env))
		wantErr(t, err, tc.want)
		if err != nil && strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("error quotes a secret: %v", err)
		}
	}
	path := writeFile(t, "m.yaml", "redis-topology:\n  cluster-addrs: [a:1]\n  sentinel-master: m\n")
	_, err := Load([]string{"--config", path, "--redis", "redis://h:1"}, env(nil))
	wantErr(t, err, "redis-topology: choose Sentinel or Cluster")
	path = writeFile(t, "m.yaml", "redis-topology:\n  cluster-addrs: [a:1]\n")
	_, err = Load([]string{"--config", path}, env(nil))
	wantErr(t, err, "redis-topology needs --redis")
}
