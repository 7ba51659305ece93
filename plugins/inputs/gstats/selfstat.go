package gstats

import (
	"github.com/influxdata/telegraf/selfstat"
)

// selfStats mirrors the gstats_internal fields into Telegraf's selfstat
// registry, so a Telegraf built with the plugin compiled in reports them
// through [[inputs.internal]] as the measurement internal_gstats. Under the
// execd shim selfstat is never read; gstats_internal carries the same
// numbers as an ordinary metric.
type selfStats map[string]selfstat.Stat

// registerSelfStats registers one stat per gstats_internal field, tagged
// with the bound stats address so two plugin instances stay apart.
// Registering again (a Telegraf config reload) returns the same stats.
func registerSelfStats(statsAddress string) selfStats {
	tags := map[string]string{"stats_address": statsAddress}
	var c counters
	c.init()
	s := make(selfStats)
	for field := range c.fields(0) {
		s[field] = selfstat.Register("gstats", field, tags)
	}
	return s
}

// set copies the current counter values into the registered stats.
func (s selfStats) set(fields map[string]any) {
	for name, v := range fields {
		if st, ok := s[name]; ok {
			if n, ok := v.(int64); ok {
				st.Set(n)
			}
		}
	}
}
