package gstats

import (
	"os"
	"strings"
	"testing"
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
	for _, field := range []string{"started", "finished", "in_flight", "count", "rate", "mean_ms", "stddev_ms",
		"min_ms", "max_ms", "p50_ms", "status_2xx", "status_none", "accepted", "rejected_bad_duration", "disconnects"} {
		if !strings.Contains(text, "- "+field+" (") && !strings.Contains(text, field+",") && !strings.Contains(text, field+" (") {
			t.Errorf("README.md does not document field %s", field)
		}
	}
}
