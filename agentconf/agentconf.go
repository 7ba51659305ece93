// Package agentconf loads the standalone gstats-collectd configuration: a
// TOML file holding the same [[inputs.gstats]] block Telegraf takes. Unlike
// Telegraf's execd shim, it rejects keys it does not know, naming the file
// and the key, so a typo never passes silently.
package agentconf

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/gstats/gstats/plugins/inputs/gstats"
)

// Config is a loaded standalone configuration.
type Config struct {
	// Gstats is the plugin, with the file's settings over its defaults.
	Gstats *gstats.Gstats
}

// file mirrors the accepted layout.
type file struct {
	Inputs struct {
		Gstats []toml.Primitive `toml:"gstats"`
	} `toml:"inputs"`
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
	var f file
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
	g := gstats.New()
	if err := md.PrimitiveDecode(f.Inputs.Gstats[0], g); err != nil {
		return nil, fmt.Errorf("%s: [[inputs.gstats]]: %w", name, describe(err))
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("%s: unknown key(s) %s; check the spelling against the sample configuration (gstats-collectd --sample-config)", name, strings.Join(quoteAll(keys), ", "))
	}
	return &Config{Gstats: g}, nil
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

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expandEnv replaces ${VAR}, $VAR and ${VAR:-default} with the environment,
// as Telegraf does; an unset variable without a default is an error naming
// it. Comment lines are left alone.
func expandEnv(text string) (string, error) {
	lines := strings.SplitAfter(text, "\n")
	var missing []string
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		lines[i] = envRef.ReplaceAllStringFunc(line, func(ref string) string {
			m := envRef.FindStringSubmatch(ref)
			name, op, def := m[1], m[2], m[3]
			if name == "" {
				name = m[4]
			}
			v, ok := os.LookupEnv(name)
			switch {
			case ok && (v != "" || op != ":-"):
				return v
			case op != "":
				return def
			}
			missing = append(missing, fmt.Sprintf("line %d: environment variable %s is not set", i+1, name))
			return ref
		})
	}
	if len(missing) > 0 {
		return "", errors.New(strings.Join(missing, "; "))
	}
	return strings.Join(lines, ""), nil
}
