package main

import (
	"fmt"
	"strings"
)

// The plugin README's passage on the state file's cost lies between these
// markers; `make bench` rewrites it from the run's figures (stateCostText).
const (
	stateCostBegin = "<!-- bench:state-cost (written by make bench) -->"
	stateCostEnd   = "<!-- /bench:state-cost -->"
)

// rewriteBlock replaces what lies between begin and end in doc with text,
// wrapped at width columns, each line after the first marker's indented
// by indent (the marker ends its line; the end marker follows the text).
func rewriteBlock(doc, begin, end, text, indent string, width int) (string, error) {
	i := strings.Index(doc, begin)
	if i < 0 {
		return "", fmt.Errorf("no %q marker", begin)
	}
	if strings.Count(doc, begin) != 1 || strings.Count(doc, end) != 1 {
		return "", fmt.Errorf("the markers %q and %q must appear once each", begin, end)
	}
	j := strings.Index(doc, end)
	if j < i {
		return "", fmt.Errorf("%q comes before %q", end, begin)
	}
	var b strings.Builder
	b.WriteString(doc[:i+len(begin)])
	for _, l := range wrap(text, width-len(indent)) {
		b.WriteString("\n" + indent + l)
	}
	b.WriteString(doc[j:])
	return b.String(), nil
}

// wrap breaks text into lines of at most width runes where it can, at
// spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case len([]rune(line))+1+len([]rune(w)) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
