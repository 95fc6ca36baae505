package explain

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// NothingRecognised is the one line written when no error was recognised.
const NothingRecognised = "modgate explain: no known error in the output"

// WriteText writes the explanations for a terminal, wrapped at 80 columns.
func WriteText(w io.Writer, exps []Explanation) error {
	var b strings.Builder
	if len(exps) == 0 {
		b.WriteString(NothingRecognised + "\n")
	} else {
		fmt.Fprintf(&b, "\nmodgate explain: %d %s\n", len(exps), plural(len(exps), "problem", "problems"))
		for i, e := range exps {
			head := fmt.Sprintf("%d. %s", i+1, e.Title)
			if e.Subject != "" {
				head += ": " + e.Subject
			}
			b.WriteString("\n" + head + "\n")
			wrap(&b, "   seen:  ", e.Line)
			wrap(&b, "   cause: ", e.Cause)
			wrap(&b, "   fix:   ", e.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes {"explanations": [...]}, an empty array when nothing was
// recognised.
func WriteJSON(w io.Writer, exps []Explanation) error {
	if exps == nil {
		exps = []Explanation{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Explanations []Explanation `json:"explanations"`
	}{exps})
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// wrap writes text after prefix, broken at spaces to fit 80 columns, with
// continuation lines indented under the text. A word longer than a line
// (a URL) stays whole.
func wrap(b *strings.Builder, prefix, text string) {
	const width = 80
	indent := strings.Repeat(" ", len(prefix))
	col := 0
	b.WriteString(prefix)
	col = len(prefix)
	first := true
	for _, word := range strings.Fields(text) {
		if !first && col+1+len(word) > width {
			b.WriteString("\n" + indent)
			col = len(indent)
		} else if !first {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
		first = false
	}
	b.WriteByte('\n')
}
