// Package agentconf loads the standalone gstats-collectd configuration: a
// Telegraf-compatible subset made of [agent] (interval, flush_interval,
// batch and buffer sizes, hostname), [global_tags], one [[inputs.gstats]]
// (the same block Telegraf takes) and the outputs [[outputs.file]],
// [[outputs.influxdb]] and [[outputs.influxdb_v2]], which are Telegraf's own
// output plugins. Unlike Telegraf's execd shim, it rejects keys it does not
// know, naming the file and the key, so a typo never passes silently.
package agentconf

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/outputs"
	_ "github.com/influxdata/telegraf/plugins/outputs/file"        // registers outputs.file
	_ "github.com/influxdata/telegraf/plugins/outputs/influxdb"    // registers outputs.influxdb
	_ "github.com/influxdata/telegraf/plugins/outputs/influxdb_v2" // registers outputs.influxdb_v2

	"github.com/gstats/gstats/plugins/inputs/gstats"
)

// OutputNames are the Telegraf outputs a standalone configuration may use.
var OutputNames = []string{"file", "influxdb", "influxdb_v2"}

// Config is a loaded standalone configuration.
type Config struct {
	// Gstats is the plugin, with the file's settings over its defaults.
	Gstats *gstats.Gstats
	// Agent holds the [agent] settings, defaults filled in.
	Agent Agent
	// GlobalTags are added to every metric ([global_tags]).
	GlobalTags map[string]string
	// Outputs are the configured outputs, in file order, not yet
	// initialised.
	Outputs []Output
	// Sections names the top-level sections the file set besides
	// [[inputs.gstats]] ("agent", "global_tags", "outputs.file", ...).
	Sections []string
}

// Agent is the [agent] subset gstats-collectd honours.
type Agent struct {
	// Interval is how often the collector's statistics are gathered.
	Interval config.Duration `toml:"interval"`
	// FlushInterval is how often outputs are written.
	FlushInterval config.Duration `toml:"flush_interval"`
	// MetricBatchSize is the most metrics one write sends.
	MetricBatchSize int `toml:"metric_batch_size"`
	// MetricBufferLimit is the most metrics an output buffers while it
	// cannot write; the oldest are dropped past it.
	MetricBufferLimit int `toml:"metric_buffer_limit"`
	// Hostname is the host tag's value; empty means os.Hostname.
	Hostname string `toml:"hostname"`
	// OmitHostname leaves the host tag out.
	OmitHostname bool `toml:"omit_hostname"`
}

// Defaults of [agent], as Telegraf has them.
const (
	DefaultInterval          = 10 * time.Second
	DefaultFlushInterval     = 10 * time.Second
	DefaultMetricBatchSize   = 1000
	DefaultMetricBufferLimit = 10000
)

// Output is one configured output: a Telegraf output plugin with its own
// settings decoded, plus the per-output settings Telegraf keeps outside the
// plugin.
type Output struct {
	// Name is the plugin name: "file", "influxdb" or "influxdb_v2".
	Name string
	// Index is the output's 1-based position among the outputs of its name.
	Index int
	// Plugin is the output, decoded and not yet initialised.
	Plugin telegraf.Output
	// Common holds the settings every output takes.
	Common OutputCommon
	// Serializer holds the data format settings (outputs.file only).
	Serializer SerializerConfig
}

// Label names the output in messages: outputs.influxdb, or
// outputs.influxdb #2 when there are several.
func (o Output) Label() string {
	if o.Index > 1 {
		return fmt.Sprintf("outputs.%s #%d", o.Name, o.Index)
	}
	return "outputs." + o.Name
}

// OutputCommon are the settings Telegraf accepts on every output.
type OutputCommon struct {
	Alias                string          `toml:"alias"`
	MetricBatchSize      int             `toml:"metric_batch_size"`
	MetricBufferLimit    int             `toml:"metric_buffer_limit"`
	FlushInterval        config.Duration `toml:"flush_interval"`
	StartupErrorBehavior string          `toml:"startup_error_behavior"`
}

// SerializerConfig is the influx data format's settings.
type SerializerConfig struct {
	DataFormat   string      `toml:"data_format"`
	SortFields   bool        `toml:"influx_sort_fields"`
	UintSupport  bool        `toml:"influx_uint_support"`
	MaxLineBytes config.Size `toml:"influx_max_line_bytes"`
	OmitTime     bool        `toml:"influx_omit_timestamp"`
}

// layout mirrors the accepted file layout.
type layout struct {
	Agent      toml.Primitive    `toml:"agent"`
	GlobalTags map[string]string `toml:"global_tags"`
	Inputs     struct {
		Gstats []toml.Primitive `toml:"gstats"`
	} `toml:"inputs"`
	Outputs map[string][]toml.Primitive `toml:"outputs"`
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses data; name is the file name used in errors.
func Parse(name string, data []byte) (*Config, error) {
	text, err := expandEnv(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var f layout
	md, err := toml.Decode(text, &f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, describe(err))
	}
	switch len(f.Inputs.Gstats) {
	case 0:
		return nil, fmt.Errorf("%s: no [[inputs.gstats]] section; the file must hold exactly one", name)
	case 1:
	default:
		return nil, fmt.Errorf("%s: %d [[inputs.gstats]] sections; gstats-collectd runs exactly one (run one process per collector)", name, len(f.Inputs.Gstats))
	}
	cfg := &Config{
		Gstats: gstats.New(),
		Agent: Agent{
			Interval:          config.Duration(DefaultInterval),
			FlushInterval:     config.Duration(DefaultFlushInterval),
			MetricBatchSize:   DefaultMetricBatchSize,
			MetricBufferLimit: DefaultMetricBufferLimit,
		},
		GlobalTags: f.GlobalTags,
	}
	if err := md.PrimitiveDecode(f.Inputs.Gstats[0], cfg.Gstats); err != nil {
		return nil, fmt.Errorf("%s: [[inputs.gstats]]: %w", name, describe(err))
	}
	if md.IsDefined("agent") {
		cfg.Sections = append(cfg.Sections, "agent")
		if err := md.PrimitiveDecode(f.Agent, &cfg.Agent); err != nil {
			return nil, fmt.Errorf("%s: [agent]: %w", name, describe(err))
		}
		if err := cfg.Agent.validate(); err != nil {
			return nil, fmt.Errorf("%s: [agent]: %w", name, err)
		}
	}
	if md.IsDefined("global_tags") {
		cfg.Sections = append(cfg.Sections, "global_tags")
	}
	if err := unknownPlugins(name, md); err != nil {
		return nil, err
	}
	outs, err := decodeOutputs(name, md, f.Outputs)
	if err != nil {
		return nil, err
	}
	cfg.Outputs = outs
	for _, o := range outs {
		if !slices.Contains(cfg.Sections, "outputs."+o.Name) {
			cfg.Sections = append(cfg.Sections, "outputs."+o.Name)
		}
	}
	keys := inexactKeys(md, cfg.Outputs)
	for _, k := range md.Undecoded() {
		if s := k.String(); !slices.Contains(keys, s) {
			keys = append(keys, s)
		}
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		return nil, fmt.Errorf("%s: unknown key(s) %s; check the spelling against the sample configuration (gstats-collectd --sample-config)", name, strings.Join(quoteAll(keys), ", "))
	}
	return cfg, nil
}

// inexactKeys returns the settings the file spells other than their keys:
// the TOML decoder matches a key to a setting regardless of case, and
// when two spellings of one setting are given ("window_slots" and
// "WINDOW_SLOTS") it applies whichever it meets first in a Go map, so the
// same file would load differently from one run to the next.
func inexactKeys(md toml.MetaData, outs []Output) []string {
	known := map[string]map[string]bool{
		"":              settingKeys(reflect.TypeFor[layout]()),
		"inputs":        {"gstats": true},
		"inputs.gstats": settingKeys(reflect.TypeFor[gstats.Gstats]()),
		"agent":         settingKeys(reflect.TypeFor[Agent]()),
	}
	for _, o := range outs {
		section := "outputs." + o.Name
		if known[section] == nil {
			known[section] = settingKeys(reflect.TypeFor[OutputCommon](), reflect.TypeOf(o.Plugin))
			if o.Name == "file" {
				maps.Copy(known[section], settingKeys(reflect.TypeFor[SerializerConfig]()))
			}
		}
	}
	var bad []string
	for _, k := range md.Keys() {
		// Every prefix: an implicit table ([[Inputs.gstats]] holds
		// Inputs) is not among the keys of its own.
		for i := range k {
			keys, ok := known[strings.Join(k[:i], ".")]
			if s := k[:i+1].String(); ok && !keys[k[i]] && !slices.Contains(bad, s) {
				bad = append(bad, s)
			}
		}
	}
	return bad
}

// settingKeys returns the TOML keys of the settings of struct types:
// their exported fields' toml tags (or names), embedded structs included.
func settingKeys(types ...reflect.Type) map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			switch {
			case name == "-":
			case f.Anonymous && name == "":
				walk(f.Type)
			case f.IsExported():
				if name == "" {
					name = f.Name
				}
				keys[name] = true
			}
		}
	}
	for _, t := range types {
		walk(t)
	}
	return keys
}

func (a Agent) validate() error {
	switch {
	case a.Interval <= 0:
		return fmt.Errorf("interval must be positive, got %s", time.Duration(a.Interval))
	case a.FlushInterval <= 0:
		return fmt.Errorf("flush_interval must be positive, got %s", time.Duration(a.FlushInterval))
	case a.MetricBatchSize < 1:
		return fmt.Errorf("metric_batch_size must be at least 1, got %d", a.MetricBatchSize)
	case a.MetricBufferLimit < a.MetricBatchSize:
		return fmt.Errorf("metric_buffer_limit (%d) must be at least metric_batch_size (%d)", a.MetricBufferLimit, a.MetricBatchSize)
	}
	return nil
}

// unknownPlugins rejects plugin sections gstats-collectd cannot run, with
// one message per plugin rather than one per key.
func unknownPlugins(name string, md toml.MetaData) error {
	var bad []string
	for _, k := range md.Keys() {
		if len(k) != 2 {
			continue
		}
		switch {
		case k[0] == "inputs" && k[1] != "gstats", k[0] == "outputs" && !slices.Contains(OutputNames, k[1]):
			bad = append(bad, k[0]+"."+k[1])
		case k[0] == "processors" || k[0] == "aggregators" || k[0] == "secretstores":
			bad = append(bad, k[0]+"."+k[1])
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: unsupported plugin(s) %s; gstats-collectd runs inputs.gstats with outputs %s (run Telegraf for anything else)",
			name, strings.Join(bad, ", "), strings.Join(OutputNames, ", "))
	}
	return nil
}

// decodeOutputs decodes each [[outputs.NAME]] section into the Telegraf
// output plugin registered under NAME.
func decodeOutputs(name string, md toml.MetaData, sections map[string][]toml.Primitive) ([]Output, error) {
	var outs []Output
	for _, plugin := range OutputNames {
		for i, prim := range sections[plugin] {
			o := Output{Name: plugin, Index: i + 1}
			where := fmt.Sprintf("%s: [[outputs.%s]] #%d", name, plugin, i+1)
			if err := md.PrimitiveDecode(prim, &o.Common); err != nil {
				return nil, fmt.Errorf("%s: %w", where, describe(err))
			}
			switch o.Common.StartupErrorBehavior {
			case "", "error", "retry", "ignore":
			default:
				return nil, fmt.Errorf("%s: startup_error_behavior %q is not one of error, retry, ignore", where, o.Common.StartupErrorBehavior)
			}
			if plugin == "file" {
				o.Serializer = SerializerConfig{DataFormat: "influx"}
				if err := md.PrimitiveDecode(prim, &o.Serializer); err != nil {
					return nil, fmt.Errorf("%s: %w", where, describe(err))
				}
				if o.Serializer.DataFormat != "influx" {
					return nil, fmt.Errorf("%s: data_format %q is not supported; gstats-collectd writes \"influx\" (line protocol)", where, o.Serializer.DataFormat)
				}
			}
			o.Plugin = outputs.Outputs[plugin]()
			if err := md.PrimitiveDecode(prim, o.Plugin); err != nil {
				return nil, fmt.Errorf("%s: %w", where, describe(err))
			}
			outs = append(outs, o)
		}
	}
	// Outputs come grouped by plugin, in the order of OutputNames, and in
	// file order within a plugin (Index numbers them in messages).
	return outs, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// describe turns a TOML error into one line naming the line and key.
func describe(err error) error {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		if perr.LastKey != "" {
			return fmt.Errorf("line %d, key %q: %s", perr.Position.Line, perr.LastKey, perr.Message)
		}
		return fmt.Errorf("line %d: %s", perr.Position.Line, perr.Message)
	}
	return err
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expandEnv replaces environment references as Telegraf does: $VAR and
// ${VAR}; ${VAR:-default} (unset or empty) and ${VAR-default} (unset);
// ${VAR:?message} and ${VAR?message}, which make an unset (or empty)
// variable an error with that message; $$ is a literal $. An unset
// variable without a default is an error naming it and its line. Comment
// lines are left alone.
func expandEnv(text string) (string, error) {
	lines := strings.SplitAfter(text, "\n")
	var problems []string
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		lines[i] = envRef.ReplaceAllStringFunc(line, func(ref string) string {
			if ref == "$$" {
				return "$"
			}
			m := envRef.FindStringSubmatch(ref)
			name, op, arg := m[1], m[2], m[3]
			if name == "" {
				name = m[4]
			}
			v, set := os.LookupEnv(name)
			missing := !set || (v == "" && strings.HasPrefix(op, ":"))
			switch {
			case !missing:
				return v
			case strings.HasSuffix(op, "-"):
				return arg
			case strings.HasSuffix(op, "?"):
				msg := arg
				if msg == "" {
					msg = "is required"
				}
				problems = append(problems, fmt.Sprintf("line %d: environment variable %s: %s", i+1, name, msg))
				return ref
			}
			problems = append(problems, fmt.Sprintf("line %d: environment variable %s is not set", i+1, name))
			return ref
		})
	}
	if len(problems) > 0 {
		return "", errors.New(strings.Join(problems, "; "))
	}
	return strings.Join(lines, ""), nil
}
