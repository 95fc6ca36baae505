package progress

import (
	"bytes"
	"strings"
	"testing"
)

func TestCountedLinesWhenNotATerminal(t *testing.T) {
	var out, msgs bytes.Buffer
	b := New(&out, "verifying")
	b.Start(20)
	for i := 0; i < 20; i++ {
		b.Add(1)
		if i == 4 {
			b.Printf(&msgs, "problem %d\n", i)
		}
	}
	b.Done()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[0] != "verifying: 20 to do" || lines[len(lines)-1] != "verifying: 20/20 (100%)" || len(lines) != 11 {
		t.Fatalf("got %d lines:\n%s", len(lines), out.String())
	}
	if strings.Contains(out.String(), "\r") {
		t.Fatal("carriage returns in non-terminal output")
	}
	if msgs.String() != "problem 4\n" {
		t.Fatalf("messages: %q", msgs.String())
	}
}

func TestEmptyTask(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "x")
	b.Start(0)
	b.Done()
	if got := out.String(); got != "x: 0 to do\nx: 0/0\n" {
		t.Fatalf("got %q", got)
	}
}
