package main

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// rssResult is the memory of modgate while it serves a large zip to many
// clients at once.
type rssResult struct {
	zipSize      int64
	clients      int
	fetchHWM     int64 // VmHWM of the process that fetched and checked the zip
	idleRSS      int64 // VmRSS of the serving process before the clients start
	peakRSS      int64 // highest sampled VmRSS while serving
	hwm          int64 // VmHWM of the serving process at the end
	samples      int
	elapsed      time.Duration
	bytesServed  int64
	throughputMB float64
}

// measureRSS has clients concurrent clients each download the zip at
// zipPath from modgate (pid, baseURL) while VmRSS is sampled every 50ms.
func measureRSS(pid int, baseURL, zipPath string, size int64, clients int) (rssResult, error) {
	res := rssResult{zipSize: size, clients: clients}
	var err error
	if res.idleRSS, _, err = memStatus(pid); err != nil {
		return res, err
	}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := memStatus(pid); err == nil {
				res.samples++
				res.peakRSS = max(res.peakRSS, rss)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()

	tr := &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var total int64
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := fetchDiscard(client, baseURL+zipPath)
			if err == nil && n != size {
				err = fmt.Errorf("got %d bytes, want %d", n, size)
			}
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	close(stop)
	<-sampled
	if rss, hwm, err := memStatus(pid); err == nil {
		res.peakRSS = max(res.peakRSS, rss)
		res.hwm = hwm
	}
	res.bytesServed = total
	res.throughputMB = float64(total) / 1e6 / res.elapsed.Seconds()
	return res, firstErr
}

// fetchDiscard GETs url, reads the body to the end and returns its size.
func fetchDiscard(client *http.Client, url string) (int64, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return n, nil
}
