package gstats

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gstats/gstats/plugins/inputs/gstats/window"
)

// TestReadmeHoldsSampleConfig keeps the README's Configuration block equal
// to sample.conf, as Telegraf's README generator would.
func TestReadmeHoldsSampleConfig(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	const open = "```toml @sample.conf\n"
	start := strings.Index(text, open)
	if start < 0 {
		t.Fatal("README.md has no ```toml @sample.conf block")
	}
	body := text[start+len(open):]
	end := strings.Index(body, "```")
	if end < 0 {
		t.Fatal("README.md: the sample.conf block is not closed")
	}
	if body[:end] != sampleConfig {
		t.Errorf("README.md's configuration block differs from sample.conf; paste sample.conf into it")
	}
	for _, heading := range []string{"# gstats Input Plugin", "## Service Input", "## Global configuration options",
		"## Configuration", "## Metrics", "## Example Output", "## Troubleshooting"} {
		if !strings.Contains(text, heading) {
			t.Errorf("README.md lacks %q", heading)
		}
	}
	// Every field Gather can emit is documented.
	g := New()
	var c counters
	c.init()
	st := window.Stats{Count: 1, Percentiles: make([]float64, len(g.Percentiles))}
	fields := g.fields(st)
	for k := range c.fields(0) {
		fields[k] = nil
	}
	for field := range fields {
		if !regexp.MustCompile(`\b`+regexp.QuoteMeta(field)+`\b[^(\n]*\n?[^(\n]*\((integer|float)`).MatchString(text) &&
			!regexp.MustCompile(`\b`+regexp.QuoteMeta(field)+`,`).MatchString(text) {
			t.Errorf("README.md does not document field %s with its type", field)
		}
	}
}

// TestReadmeExecdBlockMatchesDeploy keeps the README's [[inputs.execd]]
// example equal to the deployed snippet.
func TestReadmeExecdBlockMatchesDeploy(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	snippet, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "telegraf", "telegraf.d", "gstats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, line := range strings.Split(string(snippet), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			want = append(want, line)
		}
	}
	block := strings.Join(want, "\n")
	var got []string
	for _, line := range strings.Split(string(readme), "\n") {
		got = append(got, strings.TrimSpace(line))
	}
	if !strings.Contains(strings.Join(got, "\n"), block) {
		t.Errorf("README.md does not show deploy/telegraf/telegraf.d/gstats.conf as it is:\n%s", block)
	}
}
