package s3server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func client(t *testing.T, s *Server, secret string) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, secret, ""),
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStart: the server lists its buckets for its own credentials and
// refuses another secret, which is what lets Start tell it from another
// S3 server on its port.
func TestStart(t *testing.T) {
	s := Start(t)
	s.CreateBucket(t, "one")
	buckets, err := client(t, s, s.SecretKey).ListBuckets(t.Context())
	if err != nil || len(buckets) != 1 || buckets[0].Name != "one" {
		t.Fatalf("ListBuckets = %v, %v; want bucket one", buckets, err)
	}
	if _, err := client(t, s, s.SecretKey+"0").ListBuckets(t.Context()); err == nil {
		t.Fatal("ListBuckets with another secret succeeded")
	}
}

// TestStartOnTakenPorts: when the ports Start picks are taken before
// versitygw binds them, by an HTTP server that answers anything and by
// another versitygw, Start does not take them for its own server: it
// starts again on another port.
func TestStartOnTakenPorts(t *testing.T) {
	other := Start(t)
	anything := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer anything.Close()
	taken := []string{strings.TrimPrefix(anything.URL, "http://"), strings.TrimPrefix(other.Endpoint, "http://")}
	real := freeAddr
	defer func() { freeAddr = real }()
	freeAddr = func() (string, error) {
		if len(taken) == 0 {
			return real()
		}
		addr := taken[0]
		taken = taken[1:]
		return addr, nil
	}
	s := Start(t)
	if len(taken) != 0 {
		t.Fatalf("Start did not try the taken ports %v", taken)
	}
	if s.Endpoint == other.Endpoint || s.Endpoint == anything.URL {
		t.Fatalf("Start answered with the taken %s", s.Endpoint)
	}
	s.CreateBucket(t, "mine")
	if ok, err := client(t, s, s.SecretKey).BucketExists(t.Context(), "mine"); err != nil || !ok {
		t.Fatalf("BucketExists(mine) on %s = %v, %v", s.Endpoint, ok, err)
	}
	if !strings.Contains(strings.ToLower(s.Logs()), "address already in use") {
		t.Errorf("versitygw output shows no failed bind:\n%s", s.Logs())
	}
}
