package agentconf

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/influxdata/telegraf/config"

	"github.com/gstats/gstats/plugins/inputs/gstats"
)

var (
	durationType = reflect.TypeFor[config.Duration]()
	sizeType     = reflect.TypeFor[config.Size]()
)

// tomlString writes s as a TOML basic string. Every '$' is written as
// \u0024, which expandEnv does not see, so the value reads back as it is.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r == '$':
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlValue writes a configuration value in a form Parse reads back as the
// same value.
func tomlValue(t *testing.T, v reflect.Value) string {
	switch v.Type() {
	case durationType:
		return tomlString(time.Duration(v.Int()).String())
	case sizeType:
		return tomlString(strconv.FormatInt(v.Int(), 10))
	}
	switch v.Kind() {
	case reflect.String:
		return tomlString(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		switch f := v.Float(); {
		case math.IsNaN(f):
			return "nan"
		case math.IsInf(f, 1):
			return "inf"
		case math.IsInf(f, -1):
			return "-inf"
		default:
			return strconv.FormatFloat(f, 'e', -1, 64)
		}
	case reflect.Slice:
		elems := make([]string, v.Len())
		for i := range elems {
			elems[i] = tomlValue(t, v.Index(i))
		}
		return "[" + strings.Join(elems, ", ") + "]"
	}
	t.Fatalf("no TOML form for %s", v.Type())
	return ""
}

// tomlFields returns the settings of a configuration struct: its exported
// fields with a TOML key, by key.
func tomlFields(v reflect.Value) (keys []string, vals map[string]reflect.Value) {
	v = reflect.Indirect(v)
	vals = map[string]reflect.Value{}
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		key := sf.Tag.Get("toml")
		if !sf.IsExported() || key == "" || key == "-" {
			continue
		}
		keys = append(keys, key)
		vals[key] = v.Field(i)
	}
	return keys, vals
}

// writeSettings writes every setting of a configuration struct.
func writeSettings(t *testing.T, b *strings.Builder, v reflect.Value) {
	keys, vals := tomlFields(v)
	for _, k := range keys {
		fmt.Fprintf(b, "%s = %s\n", k, tomlValue(t, vals[k]))
	}
}

// reserialise writes cfg back as a configuration file: every setting of
// the plugin, of [agent] (when the file had it), the global tags, and the
// settings of each output that Parse keeps outside the output plugin.
func reserialise(t *testing.T, cfg *Config) string {
	var b strings.Builder
	if slices.Contains(cfg.Sections, "agent") {
		b.WriteString("[agent]\n")
		writeSettings(t, &b, reflect.ValueOf(cfg.Agent))
	}
	if slices.Contains(cfg.Sections, "global_tags") {
		b.WriteString("[global_tags]\n")
		keys := make([]string, 0, len(cfg.GlobalTags))
		for k := range cfg.GlobalTags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s = %s\n", tomlString(k), tomlString(cfg.GlobalTags[k]))
		}
	}
	b.WriteString("[[inputs.gstats]]\n")
	writeSettings(t, &b, reflect.ValueOf(cfg.Gstats))
	for _, o := range cfg.Outputs {
		fmt.Fprintf(&b, "[[outputs.%s]]\n", o.Name)
		writeSettings(t, &b, reflect.ValueOf(o.Common))
		if o.Name == "file" {
			writeSettings(t, &b, reflect.ValueOf(o.Serializer))
		}
	}
	return b.String()
}

// tables returns the tables of an array of tables (or of a single table)
// as BurntSushi/toml decodes them into a map.
func tables(t *testing.T, v any) []map[string]any {
	switch v := v.(type) {
	case map[string]any:
		return []map[string]any{v}
	case []map[string]any:
		return v
	case []any:
		out := make([]map[string]any, len(v))
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				t.Fatalf("accepted an array holding %T where tables go", e)
			}
			out[i] = m
		}
		return out
	}
	t.Fatalf("accepted %T where tables go", v)
	return nil
}

// checkSettings checks that a table only sets keys of its struct, and that
// every key it leaves out keeps its default.
func checkSettings(t *testing.T, section string, table map[string]any, got, defaults any) {
	keys, vals := tomlFields(reflect.ValueOf(got))
	_, defs := tomlFields(reflect.ValueOf(defaults))
	for k := range table {
		if !slices.Contains(keys, k) {
			t.Fatalf("[%s]: accepted the unknown key %q", section, k)
		}
	}
	for _, k := range keys {
		if _, set := table[k]; set {
			continue
		}
		if g, d := tomlValue(t, vals[k]), tomlValue(t, defs[k]); g != d {
			t.Fatalf("[%s]: %s is not set, but is %s instead of its default %s", section, k, g, d)
		}
	}
}

// checkLoaded checks what Parse claims of a configuration it accepted,
// against the file as BurntSushi/toml reads it into a map.
func checkLoaded(t *testing.T, data []byte, cfg *Config) {
	text, err := expandEnv(string(data))
	if err != nil {
		t.Fatalf("Parse accepted a file whose variables do not expand: %v", err)
	}
	var file map[string]any
	if _, err := toml.Decode(text, &file); err != nil {
		t.Fatalf("Parse accepted a file that is not TOML: %v", err)
	}
	for k := range file {
		if !slices.Contains([]string{"agent", "global_tags", "inputs", "outputs"}, k) {
			t.Fatalf("accepted the top-level key %q", k)
		}
	}

	// Exactly one [[inputs.gstats]], with the file's settings over the
	// plugin's defaults.
	inputs, _ := file["inputs"].(map[string]any)
	if len(inputs) != 1 || inputs["gstats"] == nil {
		t.Fatalf("accepted inputs %v", file["inputs"])
	}
	g := tables(t, inputs["gstats"])
	if len(g) != 1 || cfg.Gstats == nil {
		t.Fatalf("accepted %d [[inputs.gstats]] sections (plugin %v)", len(g), cfg.Gstats)
	}
	checkSettings(t, "inputs.gstats", g[0], cfg.Gstats, gstats.New())

	// [agent]: the file's settings over Telegraf's defaults, valid.
	defaults := Agent{
		Interval:          config.Duration(DefaultInterval),
		FlushInterval:     config.Duration(DefaultFlushInterval),
		MetricBatchSize:   DefaultMetricBatchSize,
		MetricBufferLimit: DefaultMetricBufferLimit,
	}
	var agent map[string]any
	if a, ok := file["agent"]; ok {
		if agent, ok = a.(map[string]any); !ok {
			t.Fatalf("accepted agent = %v", a)
		}
	}
	checkSettings(t, "agent", agent, cfg.Agent, defaults)
	a := cfg.Agent
	if a.Interval <= 0 || a.FlushInterval <= 0 || a.MetricBatchSize < 1 || a.MetricBufferLimit < a.MetricBatchSize {
		t.Fatalf("accepted [agent] %+v", a)
	}

	// [global_tags] as written.
	wantTags := map[string]string(nil)
	if tags, ok := file["global_tags"]; ok {
		m, ok := tags.(map[string]any)
		if !ok {
			t.Fatalf("accepted global_tags = %v", tags)
		}
		wantTags = map[string]string{}
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				t.Fatalf("accepted the global tag %q = %v", k, v)
			}
			wantTags[k] = s
		}
	}
	if !reflect.DeepEqual(cfg.GlobalTags, wantTags) {
		t.Fatalf("global tags %q, the file has %q", cfg.GlobalTags, wantTags)
	}

	// Outputs: the known ones, as many as the file has, grouped in the
	// order of OutputNames and numbered from 1 within a name.
	counts := map[string]int{}
	if outs, ok := file["outputs"]; ok {
		// [[outputs]] (an array of tables) decodes into the map of
		// outputs as their union; empty, it sets nothing.
		for _, m := range tables(t, outs) {
			for name, v := range m {
				if !slices.Contains(OutputNames, name) {
					t.Fatalf("accepted the output %q", name)
				}
				counts[name] += len(tables(t, v))
			}
		}
	}
	var want []string
	if agent != nil {
		want = append(want, "agent")
	}
	if wantTags != nil {
		want = append(want, "global_tags")
	}
	i := 0
	for _, name := range OutputNames {
		if counts[name] > 0 {
			want = append(want, "outputs."+name)
		}
		for n := 1; n <= counts[name]; n, i = n+1, i+1 {
			if i >= len(cfg.Outputs) {
				t.Fatalf("%d outputs, the file has more", len(cfg.Outputs))
			}
			o := cfg.Outputs[i]
			if o.Name != name || o.Index != n || o.Plugin == nil {
				t.Fatalf("output %d is %s #%d (plugin %v), want %s #%d", i, o.Name, o.Index, o.Plugin, name, n)
			}
			if !slices.Contains([]string{"", "error", "retry", "ignore"}, o.Common.StartupErrorBehavior) {
				t.Fatalf("%s: accepted startup_error_behavior %q", o.Label(), o.Common.StartupErrorBehavior)
			}
			if (name == "file") != (o.Serializer != SerializerConfig{}) || (name == "file" && o.Serializer.DataFormat != "influx") {
				t.Fatalf("%s: serializer %+v", o.Label(), o.Serializer)
			}
		}
	}
	if i != len(cfg.Outputs) {
		t.Fatalf("%d outputs, the file has %d", len(cfg.Outputs), i)
	}
	if !slices.Equal(cfg.Sections, want) {
		t.Fatalf("sections %q, the file has %q", cfg.Sections, want)
	}
}

// FuzzParse checks that Parse names the file in every error, and that what
// it accepts is what the file says: only known keys, exactly one
// [[inputs.gstats]], the file's settings over the defaults, a valid
// [agent], the known outputs in order, and the sections it set. Parsing
// the same file twice accepts it both times or neither, with the same
// configuration, and the configuration written back as a file parses to
// the same configuration.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[[inputs.gstats]]\n  window = \"5m\"\n"))
	f.Add([]byte("[[inputs.gstats]]\n  percentiles = [50.0, 99.9]\n  stats_address = \"${HOME}\"\n"))
	f.Add([]byte("[[inputs.gstats]]\n  windw = 1\n"))
	f.Add([]byte("[agent]\n  interval = 2\n  metric_batch_size = 5\n  metric_buffer_limit = 5\n  hostname = \"$$h\\u0000\"\n" +
		"[global_tags]\n  \"a b\" = \"c\"\n[[inputs.gstats]]\n  window = \"1.5d\"\n  max_message_size = \"1MiB\"\n" +
		"  percentiles = [nan, -inf, 1e-400, -0.0]\n  http_allowed_ips = []\n[[outputs.influxdb]]\n  urls = [\"http://127.0.0.1:8086\"]\n" +
		"[[outputs.file]]\n  influx_max_line_bytes = \"2KB\"\n[[outputs.influxdb]]\n  startup_error_behavior = \"retry\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.conf", data)
		// The error text itself may differ between two parses: the TOML
		// decoder fills a map (global_tags, an output's http_headers) in
		// map order, and names whichever bad key it meets first.
		again, errAgain := Parse("fuzz.conf", data)
		if (err == nil) != (errAgain == nil) {
			t.Fatalf("parsed twice, the file gives %v, then %v", err, errAgain)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.conf: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		checkLoaded(t, data, cfg)
		text := reserialise(t, cfg)
		if textAgain := reserialise(t, again); textAgain != text {
			t.Fatalf("parsed twice, the file gives\n%s\nthen\n%s", text, textAgain)
		}
		back, err := Parse("back.conf", []byte(text))
		if err != nil {
			t.Fatalf("the configuration of %q written back as\n%s\ndoes not parse: %v", data, text, err)
		}
		if textBack := reserialise(t, back); textBack != text {
			t.Fatalf("the configuration of %q written back as\n%s\nparses as\n%s", data, text, textBack)
		}
	})
}

// TestParseRejectsOtherCase: the TOML decoder matches keys regardless of
// case, and given two spellings of one setting applied either one, run to
// run (found by FuzzParse). Only the exact key is a setting.
func TestParseRejectsOtherCase(t *testing.T) {
	for _, text := range []string{
		"[[inputs.gstats]]\n  window_slots = 1\n  WINDOW_SLOTS = 2\n",
		"[[inputs.gstats]]\n  perCentiles = [50.0]\n",
		"[[Inputs.gstats]]\n", "[[inputs.Gstats]]\n", "[Agent]\n[[inputs.gstats]]\n",
		"[agent]\n  Hostname = \"a\"\n[[inputs.gstats]]\n",
		"[[inputs.gstats]]\n[[outputs.influxdb]]\n  URLs = [\"http://127.0.0.1:8086\"]\n",
		"[[inputs.gstats]]\n[[outputs.file]]\n  Data_Format = \"influx\"\n",
	} {
		if _, err := Parse("case.conf", []byte(text)); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", text)
		}
	}
	text := "[global_tags]\n  DC = \"a\"\n  dc = \"b\"\n[[inputs.gstats]]\n[[outputs.influxdb_v2]]\n  insecure_skip_verify = true\n  http_headers = {X-Key = \"k\"}\n"
	if _, err := Parse("case.conf", []byte(text)); err != nil {
		t.Errorf("Parse(%q): %v", text, err)
	}
}
