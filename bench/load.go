package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is one fixed-duration load run.
type loadResult struct {
	requests int64
	errors   int64
	elapsed  time.Duration
	p50, p99 time.Duration
	firstErr string
	// serverCPU is the CPU time (user+system) the server used meanwhile.
	serverCPU time.Duration
}

func (r loadResult) String() string {
	s := fmt.Sprintf("%.0f req/s (p50 %s, p99 %s", r.rps(), ms(r.p50), ms(r.p99))
	if r.serverCPU > 0 && r.requests > 0 {
		s += fmt.Sprintf(", server CPU %.1fµs/req", float64(r.serverCPU.Microseconds())/float64(r.requests))
	}
	return s + ")"
}

// loadProc is runLoad against a server process, also measuring the CPU
// time that process spends on the measured requests.
func loadProc(p *proc, paths []string, conns int, dur time.Duration) (loadResult, error) {
	var before time.Duration
	r, err := runLoad(p.URL, paths, conns, dur, func() { before, _ = cpuTime(p.pid()) })
	if after, cerr := cpuTime(p.pid()); cerr == nil && before > 0 {
		r.serverCPU = after - before
	}
	return r, err
}

func (r loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// runLoad sends GETs for paths (round robin, each client starting at a
// different offset) to baseURL from conns concurrent keep-alive clients for
// dur, after a short untimed warm-up that opens the connections. Only
// loopback targets are accepted.
// measuring, if not nil, is called when the warm-up is over.
func runLoad(baseURL string, paths []string, conns int, dur time.Duration, measuring func()) (loadResult, error) {
	if !strings.HasPrefix(baseURL, "http://127.0.0.1:") {
		return loadResult{}, fmt.Errorf("refusing to load %s: only 127.0.0.1 targets", baseURL)
	}
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	urls := make([]string, len(paths))
	for i, p := range paths {
		urls[i] = baseURL + p
	}
	phase := func(d time.Duration, record bool) loadResult {
		var stop atomic.Bool
		var requests, errs atomic.Int64
		var firstErr atomic.Value
		lat := make([][]time.Duration, conns)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				if record {
					mine = make([]time.Duration, 0, 1<<14)
				}
				for i := w * 7; !stop.Load(); i++ {
					t0 := time.Now()
					resp, err := client.Get(urls[i%len(urls)])
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err == nil && resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("%s: %s", urls[i%len(urls)], resp.Status)
						}
					}
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						time.Sleep(10 * time.Millisecond) // do not spin on a dead server
						continue
					}
					requests.Add(1)
					if record {
						mine = append(mine, time.Since(t0))
					}
				}
				lat[w] = mine
			}()
		}
		time.Sleep(d)
		stop.Store(true)
		wg.Wait()
		r := loadResult{requests: requests.Load(), errors: errs.Load(), elapsed: time.Since(start)}
		if e, ok := firstErr.Load().(string); ok {
			r.firstErr = e
		}
		if record {
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			slices.Sort(all)
			if len(all) > 0 {
				r.p50 = all[len(all)/2]
				r.p99 = all[len(all)*99/100]
			}
		}
		return r
	}
	phase(500*time.Millisecond, false)
	if measuring != nil {
		measuring()
	}
	r := phase(dur, true)
	if r.errors > 0 {
		return r, fmt.Errorf("%d of %d requests failed; first: %s", r.errors, r.errors+r.requests, r.firstErr)
	}
	return r, nil
}
