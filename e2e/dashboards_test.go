package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The dashboards under dashboards/, relative to the repository.
var (
	grafanaDashboardPath  = filepath.Join("dashboards", "grafana", "gstats-influxql.json")
	influxdb2TemplatePath = filepath.Join("dashboards", "influxdb2", "gstats-template.json")
)

// grafanaDatasource is the data source every panel, target and variable of
// the Grafana dashboard names: the DS_INFLUXDB input, bound at import.
var grafanaDatasource = grafanaRef{Type: "influxdb", UID: "${DS_INFLUXDB}"}

type grafanaRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaTarget struct {
	RefID        string      `json:"refId"`
	Datasource   *grafanaRef `json:"datasource"`
	RawQuery     bool        `json:"rawQuery"`
	ResultFormat string      `json:"resultFormat"`
	Query        string      `json:"query"`
}

type grafanaGridPos struct {
	H, W, X, Y int
}

type grafanaPanel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Datasource  *grafanaRef     `json:"datasource"`
	GridPos     *grafanaGridPos `json:"gridPos"`
	Targets     []grafanaTarget `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type grafanaVariable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Datasource *grafanaRef `json:"datasource"`
	Query      string      `json:"query"`
	Multi      bool        `json:"multi"`
	IncludeAll bool        `json:"includeAll"`
}

// grafanaDashboard is the part of Grafana's dashboard model these tests
// check.
type grafanaDashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Requires []struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"__requires"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

// variable returns the template variable called name, or nil.
func (d *grafanaDashboard) variable(name string) *grafanaVariable {
	for i := range d.Templating.List {
		if d.Templating.List[i].Name == name {
			return &d.Templating.List[i]
		}
	}
	return nil
}

func readGrafanaDashboard(t *testing.T) *grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), grafanaDashboardPath))
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", grafanaDashboardPath, err)
	}
	return &d
}

// templateObject is one object of an `influx apply` template.
type templateObject struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Name     string          `json:"name"`
		Type     string          `json:"type"`
		Language string          `json:"language"`
		Query    string          `json:"query"`
		Charts   []templateChart `json:"charts"`
	} `json:"spec"`
}

type templateChart struct {
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	XPos     int    `json:"xPos"`
	YPos     int    `json:"yPos"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Geom     string `json:"geom"`
	Position string `json:"position"`
	Queries  []struct {
		Query string `json:"query"`
	} `json:"queries"`
	Axes []struct {
		Name string `json:"name"`
	} `json:"axes"`
	Colors []struct {
		Hex string `json:"hex"`
	} `json:"colors"`
}

func readInfluxDB2Template(t *testing.T) []templateObject {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), influxdb2TemplatePath))
	if err != nil {
		t.Fatal(err)
	}
	var objs []templateObject
	if err := json.Unmarshal(b, &objs); err != nil {
		t.Fatalf("%s: %v", influxdb2TemplatePath, err)
	}
	return objs
}

// rect is a panel's place on a dashboard grid.
type rect struct{ x, y, w, h int }

func (a rect) overlaps(b rect) bool {
	return a.x < b.x+b.w && b.x < a.x+a.w && a.y < b.y+b.h && b.y < a.y+a.h
}

// checkLayout reports panels that leave a grid columns wide or overlap.
func checkLayout(t *testing.T, what string, columns int, names []string, rects []rect) {
	t.Helper()
	for i, r := range rects {
		if r.w <= 0 || r.h <= 0 || r.x < 0 || r.y < 0 || r.x+r.w > columns {
			t.Errorf("%s %q: position %+v outside a grid %d columns wide", what, names[i], r, columns)
		}
		for j := range i {
			if r.overlaps(rects[j]) {
				t.Errorf("%s %q %+v overlaps %q %+v", what, names[i], r, names[j], rects[j])
			}
		}
	}
}

// The InfluxQL every panel query must contain, the way Grafana's InfluxDB
// data source expects it.
var grafanaQueryParts = []string{`FROM "gstats"`, "$timeFilter", "GROUP BY time($__interval)", `"prefix" =~ /^$prefix$/`, `"host" =~ /^$host$/`, `"prefix"`}

func TestDashboardGrafanaStructure(t *testing.T) {
	d := readGrafanaDashboard(t)
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_INFLUXDB" || d.Inputs[0].Type != "datasource" || d.Inputs[0].PluginID != "influxdb" {
		t.Errorf("__inputs %+v, want one datasource input DS_INFLUXDB of plugin influxdb", d.Inputs)
	}
	requires := map[string]bool{}
	for _, r := range d.Requires {
		requires[r.Type+"/"+r.ID] = true
	}
	for _, want := range []string{"grafana/grafana", "datasource/influxdb"} {
		if !requires[want] {
			t.Errorf("__requires has no %s: %+v", want, d.Requires)
		}
	}
	if d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		t.Errorf("uid %q (1 to 40 characters), title %q (not empty)", d.UID, d.Title)
	}
	// 36 is the version of Grafana 9.0, where data sources became {type, uid}
	// references; newer Grafana migrates it up on import.
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want at least 36", d.SchemaVersion)
	}

	for _, name := range []string{"host", "prefix"} {
		v := d.variable(name)
		if v == nil {
			t.Errorf("no template variable %q", name)
			continue
		}
		wantQuery := fmt.Sprintf(`SHOW TAG VALUES FROM "gstats" WITH KEY = %q`, name)
		if v.Type != "query" || !strings.HasPrefix(v.Query, wantQuery) || !v.Multi || !v.IncludeAll {
			t.Errorf("variable %q: type %q, query %q, multi %v, includeAll %v; want a multi-value query variable with All, query %s",
				name, v.Type, v.Query, v.Multi, v.IncludeAll, wantQuery)
		}
		if v.Datasource == nil || *v.Datasource != grafanaDatasource {
			t.Errorf("variable %q: datasource %+v, want %+v", name, v.Datasource, grafanaDatasource)
		}
	}

	if len(d.Panels) == 0 {
		t.Fatal("no panels")
	}
	ids := map[int]string{}
	var names []string
	var rects []rect
	var queries strings.Builder
	for _, p := range d.Panels {
		if prev, dup := ids[p.ID]; dup || p.ID <= 0 {
			t.Errorf("panel %q: id %d not positive or already used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.Title == "" || !requires["panel/"+p.Type] {
			t.Errorf("panel %d: title %q, type %q (must be in __requires)", p.ID, p.Title, p.Type)
		}
		if p.Datasource == nil || *p.Datasource != grafanaDatasource {
			t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, grafanaDatasource)
		}
		if p.GridPos == nil {
			t.Errorf("panel %q has no gridPos", p.Title)
		} else {
			names = append(names, p.Title)
			rects = append(rects, rect{p.GridPos.X, p.GridPos.Y, p.GridPos.W, p.GridPos.H})
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refIDs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refIDs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refIDs[tg.RefID] = true
			if tg.Datasource != nil && *tg.Datasource != grafanaDatasource {
				t.Errorf("panel %q target %s: datasource %+v, want %+v", p.Title, tg.RefID, tg.Datasource, grafanaDatasource)
			}
			if !tg.RawQuery || tg.ResultFormat != "time_series" {
				t.Errorf("panel %q target %s: rawQuery %v, resultFormat %q; want a raw InfluxQL time series query", p.Title, tg.RefID, tg.RawQuery, tg.ResultFormat)
			}
			for _, part := range grafanaQueryParts {
				if !strings.Contains(tg.Query, part) {
					t.Errorf("panel %q target %s: query lacks %s: %s", p.Title, tg.RefID, part, tg.Query)
				}
			}
			queries.WriteString(tg.Query + "\n")
		}
	}
	checkLayout(t, "panel", 24, names, rects)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Query, "non_negative_difference") && p.FieldConfig.Defaults.Unit != "percentunit" {
				t.Errorf("panel %q shows a ratio with unit %q, want percentunit", p.Title, p.FieldConfig.Defaults.Unit)
			}
		}
	}

	// The panels the dashboard exists for.
	all := queries.String()
	for _, want := range []string{
		`mean("rate")`,
		`non_negative_derivative(last("finished"), 1s)`,
		`("in_flight")`,
		`("p50_ms")`, `("p90_ms")`, `("p99_ms")`,
		`non_negative_difference(last("status_5xx")) / non_negative_difference(last("finished"))`,
		`non_negative_difference(last("status_4xx")) / non_negative_difference(last("finished"))`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel query contains %s", want)
		}
	}
}

// Flux names every dashboard query may use besides the template's own
// variables: the ones the InfluxDB UI defines.
var fluxBuiltinVariables = []string{"timeRangeStart", "timeRangeStop", "windowPeriod"}

var (
	fluxVariableRef = regexp.MustCompile(`\bv\.([A-Za-z_][A-Za-z0-9_]*)`)
	dns1123Label    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	fluxGeometries  = []string{"line", "step", "stacked", "monotoneX", "bar"}
)

// balanced reports whether the brackets of a Flux query pair up, outside
// string literals and regular expressions.
func balanced(q string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inString := false
	for i, c := range q {
		switch {
		case inString:
			if c == '"' && (i == 0 || q[i-1] != '\\') {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '(' || c == '[' || c == '{':
			stack = append(stack, c)
		case pairs[c] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inString
}

// TestDashboardInfluxDB2TemplateStructure checks the InfluxDB 2 template's
// structure. No InfluxDB 2 server is available to run its Flux, so the
// field names it uses are checked against a real run in
// TestIntegrationDashboardQueries.
func TestDashboardInfluxDB2TemplateStructure(t *testing.T) {
	objs := readInfluxDB2Template(t)
	vars := map[string]templateObject{}
	var dashboards []templateObject
	metaNames := map[string]bool{}
	for _, o := range objs {
		if o.APIVersion != "influxdata.com/v2alpha1" {
			t.Errorf("%s %q: apiVersion %q, want influxdata.com/v2alpha1", o.Kind, o.Metadata.Name, o.APIVersion)
		}
		if !dns1123Label.MatchString(o.Metadata.Name) || len(o.Metadata.Name) > 63 || metaNames[o.Metadata.Name] {
			t.Errorf("%s: metadata.name %q is not a unique DNS-1123 label", o.Kind, o.Metadata.Name)
		}
		metaNames[o.Metadata.Name] = true
		switch o.Kind {
		case "Variable":
			if o.Spec.Type != "query" || o.Spec.Language != "flux" || strings.TrimSpace(o.Spec.Query) == "" || !balanced(o.Spec.Query) {
				t.Errorf("variable %q: type %q, language %q, query %q; want a Flux query variable", o.Spec.Name, o.Spec.Type, o.Spec.Language, o.Spec.Query)
			}
			vars[o.Spec.Name] = o
		case "Dashboard":
			dashboards = append(dashboards, o)
		default:
			t.Errorf("object %q of kind %q, want Dashboard or Variable", o.Metadata.Name, o.Kind)
		}
	}
	for _, name := range []string{"bucket", "host", "prefix"} {
		if _, ok := vars[name]; !ok {
			t.Errorf("no variable %q", name)
		}
	}
	for _, tag := range []string{"host", "prefix"} {
		q := vars[tag].Spec.Query
		for _, part := range []string{"schema.tagValues(", "bucket: v.bucket", fmt.Sprintf("tag: %q", tag), `r._measurement == "gstats"`, "start: v.timeRangeStart"} {
			if !strings.Contains(q, part) {
				t.Errorf("variable %q: query lacks %s:\n%s", tag, part, q)
			}
		}
	}
	if len(dashboards) != 1 {
		t.Fatalf("%d dashboards, want 1", len(dashboards))
	}
	d := dashboards[0]
	if d.Spec.Name == "" || len(d.Spec.Charts) == 0 {
		t.Fatalf("dashboard %q: name %q, %d charts", d.Metadata.Name, d.Spec.Name, len(d.Spec.Charts))
	}

	var names []string
	var rects []rect
	for _, c := range d.Spec.Charts {
		names = append(names, c.Name)
		rects = append(rects, rect{c.XPos, c.YPos, c.Width, c.Height})
		if c.Kind != "XY" || !slices.Contains(fluxGeometries, c.Geom) || (c.Position != "overlaid" && c.Position != "stacked") {
			t.Errorf("chart %q: kind %q, geom %q, position %q; want an XY chart with a geometry of %v, overlaid or stacked", c.Name, c.Kind, c.Geom, c.Position, fluxGeometries)
		}
		axes := map[string]bool{}
		for _, a := range c.Axes {
			axes[a.Name] = true
		}
		if !axes["x"] || !axes["y"] {
			t.Errorf("chart %q: axes %+v, want x and y", c.Name, c.Axes)
		}
		for i, col := range c.Colors {
			if col.Hex == "" {
				t.Errorf("chart %q: color %d has no hex value", c.Name, i)
			}
		}
		if len(c.Queries) == 0 {
			t.Errorf("chart %q has no query", c.Name)
		}
		for i, q := range c.Queries {
			for _, part := range []string{
				"from(bucket: v.bucket)",
				"range(start: v.timeRangeStart, stop: v.timeRangeStop)",
				`r._measurement == "gstats"`,
				"v.windowPeriod",
				"r.prefix == v.prefix",
				"r.host == v.host",
			} {
				if !strings.Contains(q.Query, part) {
					t.Errorf("chart %q query %d lacks %s:\n%s", c.Name, i, part, q.Query)
				}
			}
			if !balanced(q.Query) {
				t.Errorf("chart %q query %d: unbalanced brackets:\n%s", c.Name, i, q.Query)
			}
			for _, m := range fluxVariableRef.FindAllStringSubmatch(q.Query, -1) {
				if _, ok := vars[m[1]]; !ok && !slices.Contains(fluxBuiltinVariables, m[1]) {
					t.Errorf("chart %q query %d uses v.%s, which the template does not define", c.Name, i, m[1])
				}
			}
		}
	}
	checkLayout(t, "chart", 12, names, rects)

	// The same panels as the Grafana dashboard, in the same order.
	var titles []string
	for _, p := range readGrafanaDashboard(t).Panels {
		titles = append(titles, p.Title)
	}
	if !slices.Equal(titles, names) {
		t.Errorf("InfluxDB 2 charts %q differ from the Grafana panels %q", names, titles)
	}
}

var (
	// influxQLSelect is the field list of a SELECT statement.
	influxQLSelect = regexp.MustCompile(`(?s)^SELECT (.*?) FROM `)
	influxQLAlias  = regexp.MustCompile(`\s+AS\s+"[^"]*"`)
	quotedName     = regexp.MustCompile(`"([^"]+)"`)
	fluxField      = regexp.MustCompile(`r\._field == "([^"]+)"`)
	// grafanaMacro is a Grafana variable left in a query.
	grafanaMacro = regexp.MustCompile(`\$[A-Za-z_]`)
)

// influxQLFields returns the fields a panel's SELECT reads.
func influxQLFields(t *testing.T, q string) []string {
	t.Helper()
	m := influxQLSelect.FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("not a SELECT ... FROM query: %s", q)
	}
	var out []string
	for _, f := range quotedName.FindAllStringSubmatch(influxQLAlias.ReplaceAllString(m[1], ""), -1) {
		out = append(out, f[1])
	}
	return out
}

// grafanaValues renders the values of a multi-value variable the way
// Grafana's InfluxDB data source does inside /^...$/.
func grafanaValues(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	return "(" + strings.Join(quoted, "|") + ")"
}

// grafanaInterpolate replaces Grafana's macros and variables in q.
func grafanaInterpolate(t *testing.T, q, interval string, vars map[string]string) string {
	t.Helper()
	pairs := []string{"$timeFilter", "time > now() - 15m", "$__interval", interval}
	for name, value := range vars {
		pairs = append(pairs, "$"+name, value)
	}
	out := strings.NewReplacer(pairs...).Replace(q)
	if m := grafanaMacro.FindString(out); m != "" {
		t.Fatalf("%s left in %s", m, out)
	}
	return out
}

// tagValues is the value column of a SHOW TAG VALUES result.
func tagValues(ss []series) []string {
	var out []string
	for _, s := range ss {
		for _, row := range s.Values {
			if v, ok := row[1].(string); ok {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// dashboardTraffic sends rounds of requests for each prefix over a real
// PUSH socket. After each round it calls roundDone with the finishes sent
// so far per prefix, which waits until the round has been written out, so
// that the counters grow over as many gathers as there are rounds however
// slowly the machine gathers. Every round holds each status class, a
// finish without a status and durations of 1 to 90 ms. Before the first
// round it starts inFlight[prefix] requests that never finish. It returns
// the finishes sent per prefix.
func dashboardTraffic(t *testing.T, statsAddr string, prefixes []string, inFlight map[string]int, rounds int, roundDone func(finished map[string]int)) map[string]int {
	t.Helper()
	statuses := []string{"200", "200", "201", "200", "302", "404", "503", "101", "500", "", "200", "204"}
	push := pushSocket(t, statsAddr)
	finished := map[string]int{}
	for _, prefix := range prefixes {
		for range inFlight[prefix] {
			sendFrames(t, push, prefix, "")
		}
	}
	for round := range rounds {
		for pi, prefix := range prefixes {
			for i, status := range statuses {
				ms := strconv.Itoa(1 + (round*7+i*13+pi*29)%90)
				sendFrames(t, push, prefix, "")
				sendFinish(t, push, prefix, ms, status)
				finished[prefix]++
			}
		}
		roundDone(finished)
	}
	return finished
}

// TestIntegrationDashboardQueries fills a real InfluxDB 1.6 through a real
// Telegraf running gstats-collectd under inputs.execd (the deployed
// snippet) with traffic of two prefixes,
// then runs every InfluxQL query of the Grafana dashboard, with Grafana's
// macros and variables substituted, and checks that each panel has data
// for both prefixes. It also checks that every field the Grafana and
// InfluxDB 2 dashboards read is one the collector writes.
func TestIntegrationDashboardQueries(t *testing.T) {
	integration(t)
	const (
		database = "gstats"
		hostname = "dash-host"
	)
	prefixes := []string{"api", "shop"} // sorted, as SHOW TAG VALUES lists them
	inFlight := map[string]int{"api": 1, "shop": 3}

	telegrafBin := requireBinary(t, stockTelegraf)
	db := startInfluxDB(t)
	dir := t.TempDir()
	snippet := execdSnippet(t, dir) // the deployed snippet, on free ports
	main := writeFile(t, dir, "telegraf.conf", fmt.Sprintf(`[agent]
  interval = "1s"
  flush_interval = "1s"
  round_interval = false
  collection_jitter = "0s"
  flush_jitter = "0s"
  hostname = %q
[[outputs.influxdb]]
  urls = [%q]
  database = %q
  timeout = "5s"
`, hostname, db.URL, database))
	p := startTelegraf(t, telegrafBin, main, snippet)
	t.Cleanup(func() { p.stop(t, true) })
	statsAddr, _ := endpointsIn(t, p)

	// Each round waits until InfluxDB holds it: every round lands in a
	// gather of its own, and the panels see the counters grow.
	inDB := func(finished map[string]int) {
		t.Helper()
		for _, prefix := range prefixes {
			want := finished[prefix]
			f := db.waitFields(t, database, "gstats", prefix, fmt.Sprintf("finished = %d", want), func(f map[string]any) bool {
				return num(f, "finished") == float64(want)
			})
			if num(f, "in_flight") != float64(inFlight[prefix]) {
				t.Errorf("prefix %s: in_flight %v, want %d", prefix, f["in_flight"], inFlight[prefix])
			}
		}
	}
	dashboardTraffic(t, statsAddr, prefixes, inFlight, 10, inDB)

	// What the collector really wrote.
	fieldKeys := map[string]bool{}
	for _, s := range db.query(t, database, `SHOW FIELD KEYS FROM "gstats"`) {
		for _, row := range s.Values {
			fieldKeys[fmt.Sprint(row[0])] = true
		}
	}
	tagKeys := map[string]bool{}
	for _, s := range db.query(t, database, `SHOW TAG KEYS FROM "gstats"`) {
		for _, row := range s.Values {
			tagKeys[fmt.Sprint(row[0])] = true
		}
	}
	if !tagKeys["prefix"] || !tagKeys["host"] {
		t.Fatalf("tag keys of gstats: %v, want prefix and host", tagKeys)
	}

	d := readGrafanaDashboard(t)
	t.Run("grafana variables", func(t *testing.T) {
		hosts := tagValues(db.query(t, database, d.variable("host").Query))
		if !slices.Equal(hosts, []string{hostname}) {
			t.Errorf("host variable values %q, want [%s]", hosts, hostname)
		}
		for _, host := range []string{grafanaValues(hosts), ".*"} {
			q := grafanaInterpolate(t, d.variable("prefix").Query, "", map[string]string{"host": host})
			if got := tagValues(db.query(t, database, q)); !slices.Equal(got, prefixes) {
				t.Errorf("%s: values %q, want %q", q, got, prefixes)
			}
		}
	})

	selections := []struct {
		name         string
		prefix, host string
	}{
		{"both prefixes selected", grafanaValues(prefixes), grafanaValues([]string{hostname})},
		{"All", ".*", ".*"},
	}
	for _, interval := range []string{"1s", "2s"} {
		for _, sel := range selections {
			t.Run(fmt.Sprintf("grafana panels/%s/interval %s", sel.name, interval), func(t *testing.T) {
				vars := map[string]string{"prefix": sel.prefix, "host": sel.host}
				for _, p := range d.Panels {
					for _, tg := range p.Targets {
						q := grafanaInterpolate(t, tg.Query, interval, vars)
						checkPanelResult(t, p.Title, q, db.query(t, database, q), prefixes, hostname, p.FieldConfig.Defaults.Unit == "percentunit")
					}
				}
			})
		}
	}

	t.Run("fields exist", func(t *testing.T) {
		used := map[string]bool{}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				fields := influxQLFields(t, tg.Query)
				if len(fields) == 0 {
					t.Errorf("panel %q reads no field: %s", p.Title, tg.Query)
				}
				for _, f := range fields {
					used[f] = true
					if !fieldKeys[f] {
						t.Errorf("panel %q reads field %q, which the collector does not write (it writes %v)", p.Title, f, slices.Sorted(maps.Keys(fieldKeys)))
					}
				}
			}
		}
		for _, o := range readInfluxDB2Template(t) {
			for _, c := range o.Spec.Charts {
				for i, q := range c.Queries {
					fields := fluxField.FindAllStringSubmatch(q.Query, -1)
					if len(fields) == 0 {
						t.Errorf("chart %q query %d filters no field:\n%s", c.Name, i, q.Query)
					}
					for _, f := range fields {
						used[f[1]] = true
						if !fieldKeys[f[1]] {
							t.Errorf("chart %q reads field %q, which the collector does not write (it writes %v)", c.Name, f[1], slices.Sorted(maps.Keys(fieldKeys)))
						}
					}
				}
			}
		}
		t.Logf("fields the dashboards read: %v", slices.Sorted(maps.Keys(used)))
	})
}

// checkPanelResult asserts that a panel query returned a series for each
// prefix on host, and that every column of every series has a non-null
// value and a positive one (the traffic makes every plotted value grow
// at some point). With ratio set, every value must lie in [0, 1].
func checkPanelResult(t *testing.T, title, q string, ss []series, prefixes []string, host string, ratio bool) {
	t.Helper()
	var got []string
	for _, s := range ss {
		got = append(got, s.Tags["prefix"])
		if s.Tags["host"] != host {
			t.Errorf("panel %q: series %v, want host %s\n%s", title, s.Tags, host, q)
		}
		if len(s.Columns) < 2 || s.Columns[0] != "time" {
			t.Errorf("panel %q: columns %q, want time and values\n%s", title, s.Columns, q)
			continue
		}
		for c := 1; c < len(s.Columns); c++ {
			var nonNull, positive int
			for _, row := range s.Values {
				if v, ok := row[c].(float64); ok {
					nonNull++
					if v > 0 {
						positive++
					}
					if ratio && v > 1 {
						t.Errorf("panel %q, prefix %s, column %s: ratio %v above 1\n%s", title, s.Tags["prefix"], s.Columns[c], v, q)
					}
				}
			}
			if nonNull == 0 || positive == 0 {
				t.Errorf("panel %q, prefix %s, column %s: %d non-null and %d positive of %d values\n%s",
					title, s.Tags["prefix"], s.Columns[c], nonNull, positive, len(s.Values), q)
			}
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, prefixes) {
		t.Errorf("panel %q: series for prefixes %q, want %q\n%s", title, got, prefixes, q)
	}
}
