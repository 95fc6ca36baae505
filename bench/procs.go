package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server process started by the bench: modgate or the file server.
type proc struct {
	name string
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
)

var servingRE = regexp.MustCompile(`serving on (https?://\S+)`)

// startProc runs argv, writing its output to logFile, and waits for a
// "serving on URL" line and a 200 from URL+healthPath.
func startProc(name, logFile string, argv []string, healthPath string) (*proc, error) {
	lf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	setDeathSignal(cmd)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: lf}
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(lf, line)
			if m := servingRE.FindStringSubmatch(line); m != nil {
				select {
				case urlc <- m[1]:
				default:
				}
			}
		}
		io.Copy(lf, pr)
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	select {
	case p.URL = <-urlc:
	case <-p.done:
		return nil, fmt.Errorf("%s exited at start; see %s", name, logFile)
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not start in 30s; see %s", name, logFile)
	}
	// "serving on http://host:port": talk to the loopback address we listen on.
	if u := p.URL; strings.Contains(u, "://") {
		host := u[strings.Index(u, "://")+3:]
		if _, port, err := net.SplitHostPort(host); err == nil {
			p.URL = "http://127.0.0.1:" + port
		}
	}
	for range 200 {
		resp, err := http.Get(p.URL + healthPath)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("%s never answered %s; see %s", name, healthPath, logFile)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for the process (SIGKILL after 15s).
func (p *proc) stop() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.log.Close()
	procsMu.Lock()
	delete(procs, p)
	procsMu.Unlock()
}

// stopAll stops every process still running (on exit or interrupt).
func stopAll() {
	procsMu.Lock()
	var all []*proc
	for p := range procs {
		all = append(all, p)
	}
	procsMu.Unlock()
	for _, p := range all {
		p.stop()
	}
}

// startModgate runs "modgate serve" on 127.0.0.1:0 with dataDir, upstream
// and any extra flags.
func startModgate(bin, dataDir, upstream, logFile string, extra ...string) (*proc, error) {
	argv := []string{bin, "serve",
		"--listen", "127.0.0.1:0",
		"--data-dir", dataDir,
		"--upstream", upstream,
	}
	return startProc("modgate", logFile, append(argv, extra...), "/healthz")
}

// startFileServer re-executes this program in -fileserver mode on dir.
func startFileServer(dir, logFile string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startProc("fileserver", logFile, []string{self, "-fileserver", dir}, "/")
}

// runFileServer is the -fileserver mode: http.FileServer over dir on
// 127.0.0.1:0 until SIGTERM. It prints "serving on URL" like modgate.
func runFileServer(dir string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "fileserver: serving on http://%s (%s)\n", ln.Addr(), dir)
	srv := &http.Server{
		Handler:           http.FileServer(http.Dir(dir)),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		sig := make(chan os.Signal, 1)
		notifyStop(sig)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// cpuTime returns the user+system CPU time pid has used so far.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesized command name; utime and stime are the
	// 14th and 15th fields of the line, in clock ticks (USER_HZ, 100 on Linux).
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// memStatus reads VmRSS and VmHWM (bytes) of pid from /proc.
func memStatus(pid int) (rss, hwm int64, err error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}
