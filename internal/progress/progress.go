// Package progress shows how far long work has come: a redrawn bar when
// the output is a terminal, counted lines (every 10%) when it is not, so
// logs of CI jobs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// Bar reports progress of a counted task.
type Bar struct {
	mu        sync.Mutex
	w         io.Writer
	label     string
	tty       bool
	total     int
	done      int
	lastTenth int
}

// New returns a bar writing to w, redrawing in place if w is a terminal.
func New(w io.Writer, label string) *Bar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &Bar{w: w, label: label, tty: tty}
}

// Start sets the total and shows the bar.
func (b *Bar) Start(total int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total, b.done, b.lastTenth = total, 0, 0
	if !b.tty {
		fmt.Fprintf(b.w, "%s: %d to do\n", b.label, total)
	}
	b.draw()
}

// Add records n more items done.
func (b *Bar) Add(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.draw()
}

// Printf writes a message above the bar without garbling it.
func (b *Bar) Printf(w io.Writer, format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty {
		fmt.Fprint(b.w, "\r\033[K")
	}
	fmt.Fprintf(w, format, args...)
	b.draw()
}

// Done finishes the bar's line.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tty {
		fmt.Fprintln(b.w)
	} else if b.lastTenth < 10 {
		fmt.Fprintf(b.w, "%s: %d/%d\n", b.label, b.done, b.total)
	}
}

func (b *Bar) draw() {
	if b.total <= 0 {
		return
	}
	if !b.tty {
		if tenth := b.done * 10 / b.total; tenth > b.lastTenth {
			b.lastTenth = tenth
			fmt.Fprintf(b.w, "%s: %d/%d (%d%%)\n", b.label, b.done, b.total, tenth*10)
		}
		return
	}
	const width = 30
	filled := b.done * width / b.total
	fmt.Fprintf(b.w, "\r%s [%s%s] %d/%d", b.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), b.done, b.total)
}
