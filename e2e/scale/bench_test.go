package scale

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modgate/modgate/internal/testenv"
)

// BenchmarkWarmServe: warm .info, .mod and .zip requests of stored modules
// from one keep-alive client, served by one modgate from its disk and by
// one from the S3 bucket (versitygw on the same machine). The ratio of
// ns/request is the cost of the bucket.
func BenchmarkWarmServe(b *testing.B) {
	mods := modules()
	for _, kind := range []string{"disk", "s3"} {
		b.Run(kind, func(b *testing.B) {
			var base string
			var fixture func(path, ext string) []byte
			if kind == "s3" {
				c := newClusterOf(b, 1, mods)
				base, fixture = c.procs[0].URL, func(path, ext string) []byte { return c.fixture(path, "v1.0.0", ext) }
			} else {
				tree := b.TempDir()
				testenv.BuildTree(b, tree, mods)
				up := testenv.NewUpstream(b, tree)
				p := testenv.Start(b, "--data-dir", b.TempDir(), "--upstream", up.URL(), "--prefetch=false", "--upstream-rate", "0", "--log-format", "text")
				base = p.URL
				fixture = func(path, ext string) []byte {
					data, _ := os.ReadFile(up.FilePath(path, "v1.0.0", ext))
					return data
				}
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			serve := func() {
				for _, m := range mods {
					for _, ext := range []string{"info", "mod", "zip"} {
						resp, err := client.Get(fmt.Sprintf("%s/%s/@v/v1.0.0.%s", base, m.Path, ext))
						if err != nil {
							b.Fatal(err)
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || n != int64(len(fixture(m.Path, ext))) {
							b.Fatalf("%s.%s: %d, %d bytes", m.Path, ext, resp.StatusCode, n)
						}
					}
				}
			}
			serve() // cold: fetched and stored
			for b.Loop() {
				serve()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(mods)*3), "ns/request")
		})
	}
}

// BenchmarkColdThroughput: 30 modules fetched cold (info, mod, zip) by 12
// concurrent clients spread over the replicas of a cluster over one
// bucket and one Redis, with one replica and with three; each op is a new
// cluster with an empty bucket.
func BenchmarkColdThroughput(b *testing.B) {
	var mods []testenv.Module
	for i := range 30 {
		name := fmt.Sprintf("c%02d", i)
		mods = append(mods, testenv.Module{Path: "example.com/" + name, Version: "v1.0.0", Files: map[string]string{
			name + ".go": "package " + name + "\n\n// " + strings.Repeat(name+" filler ", 20000) + "\n",
		}})
	}
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				b.StopTimer()
				c := newClusterOf(b, n, mods)
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				work := make(chan int)
				for w := range 12 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := range work {
							for _, ext := range []string{"info", "mod", "zip"} {
								status, _, err := fetch(c.url((i+w)%n, mods[i].Path, "v1.0.0", ext))
								if err != nil || status != 200 {
									b.Errorf("%s.%s: %d %v", mods[i].Path, ext, status, err)
								}
							}
						}
					}()
				}
				for i := range mods {
					work <- i
				}
				close(work)
				wg.Wait()
				total += time.Since(start)
			}
			b.ReportMetric(float64(len(mods))/(total.Seconds()/float64(b.N)), "modules/s")
		})
	}
}

// BenchmarkPeakRSS: the memory of one replica serving a 50 MB zip from the
// bucket to 64 concurrent clients, sampled every 20 ms (VmRSS) and at the
// end (VmHWM) of a replica started after the zip was stored.
func BenchmarkPeakRSS(b *testing.B) {
	random := make([]byte, 25<<20)
	rand.Read(random)
	mods := []testenv.Module{{Path: "example.com/large", Version: "v1.0.0", Files: map[string]string{
		"large.go": "package large\n", "data.txt": hex.EncodeToString(random),
	}}}
	c := newClusterOf(b, 1, mods)
	url := c.url(0, "example.com/large", "v1.0.0", "zip")
	if status, _, err := fetch(url); err != nil || status != 200 {
		b.Fatalf("cold fetch: %d %v", status, err)
	}
	size := int64(len(c.fixture("example.com/large", "v1.0.0", "zip")))
	var peak, hwm int64
	for b.Loop() {
		b.StopTimer()
		c.procs[0].Stop(b)
		c.start(0)
		url = c.url(0, "example.com/large", "v1.0.0", "zip")
		pid := c.procs[0].Cmd.Process.Pid
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				if rss, _ := memStatus(pid); rss > peak {
					peak = rss
				}
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		b.StartTimer()
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n != size {
					b.Errorf("got %d bytes, want %d", n, size)
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		close(stop)
		<-sampled
		_, h := memStatus(pid)
		hwm = max(hwm, h)
		b.StartTimer()
	}
	b.ReportMetric(float64(size)/(1<<20), "zip-MB")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
	b.ReportMetric(float64(hwm)/(1<<20), "VmHWM-MB")
}

// memStatus reads VmRSS and VmHWM of pid, in bytes.
func memStatus(pid int) (rss, hwm int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		}
	}
	return rss, hwm
}
