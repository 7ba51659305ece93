// Package pipeline runs the gstats input the way Telegraf's agent would, for
// the standalone gstats-collectd: it gathers the plugin every interval,
// adds the host and global tags, buffers the metrics in Telegraf's own
// RunningOutput (batching, buffer limit, retries) and writes them through
// Telegraf's output plugins every flush interval. On shutdown the plugin's
// final gather is flushed before the outputs close.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/agent"
	"github.com/influxdata/telegraf/models"
	"github.com/influxdata/telegraf/plugins/serializers/influx"

	"github.com/gstats/gstats/agentconf"
	"github.com/gstats/gstats/internal/logging"
)

// Pipeline is a configured set of outputs with the agent settings.
type Pipeline struct {
	agent   agentconf.Agent
	tags    map[string]string
	outputs []*output
	log     *slog.Logger
	tlog    telegraf.Logger
}

type output struct {
	label   string
	ro      *models.RunningOutput
	flush   time.Duration
	writeMu sync.Mutex // one write at a time per output
}

// New initialises the outputs of cfg. It connects nothing.
func New(cfg *agentconf.Config, log *slog.Logger) (*Pipeline, error) {
	p := &Pipeline{
		agent: cfg.Agent,
		tags:  maps.Clone(cfg.GlobalTags),
		log:   log,
		tlog:  logging.New(log.With("plugin", "inputs.gstats")),
	}
	if p.tags == nil {
		p.tags = map[string]string{}
	}
	if !cfg.Agent.OmitHostname {
		host := cfg.Agent.Hostname
		if host == "" {
			h, err := os.Hostname()
			if err != nil {
				return nil, fmt.Errorf("finding the host name for the host tag (set [agent] hostname or omit_hostname): %w", err)
			}
			host = h
		}
		if _, ok := p.tags["host"]; !ok {
			p.tags["host"] = host
		}
	}
	for _, o := range cfg.Outputs {
		out, err := newOutput(o, cfg.Agent)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.Label(), err)
		}
		p.outputs = append(p.outputs, out)
	}
	return p, nil
}

func newOutput(o agentconf.Output, a agentconf.Agent) (*output, error) {
	if sp, ok := o.Plugin.(telegraf.SerializerPlugin); ok {
		s := &influx.Serializer{
			SortFields:    o.Serializer.SortFields,
			UintSupport:   o.Serializer.UintSupport,
			MaxLineBytes:  int(o.Serializer.MaxLineBytes),
			OmitTimestamp: o.Serializer.OmitTime,
		}
		if err := s.Init(); err != nil {
			return nil, fmt.Errorf("creating the influx serializer: %w", err)
		}
		sp.SetSerializer(s)
	}
	behaviour := o.Common.StartupErrorBehavior
	if behaviour == "" {
		// The collector must keep collecting while InfluxDB is down:
		// metrics wait in the buffer and the output reconnects on write.
		behaviour = "retry"
	}
	flush := time.Duration(a.FlushInterval)
	if o.Common.FlushInterval > 0 {
		flush = time.Duration(o.Common.FlushInterval)
	}
	ro := models.NewRunningOutput(o.Plugin, &models.OutputConfig{
		Name:                 o.Name,
		Alias:                o.Common.Alias,
		StartupErrorBehavior: behaviour,
		FlushInterval:        flush,
		MetricBatchSize:      o.Common.MetricBatchSize,
		MetricBufferLimit:    o.Common.MetricBufferLimit,
		BufferStrategy:       "memory",
	}, a.MetricBatchSize, a.MetricBufferLimit)
	if err := ro.Init(); err != nil {
		return nil, err
	}
	return &output{label: o.Label(), ro: ro, flush: flush}, nil
}

// Outputs names the configured outputs.
func (p *Pipeline) Outputs() []string {
	names := make([]string, len(p.outputs))
	for i, o := range p.outputs {
		names[i] = o.label
	}
	return names
}

// Run connects the outputs, starts in, gathers it every interval and
// flushes the outputs every flush interval until ctx is done; then it stops
// in (which gathers once more), flushes what is buffered and closes the
// outputs. in must be initialised and not started.
func (p *Pipeline) Run(ctx context.Context, in telegraf.ServiceInput) error {
	for i, o := range p.outputs {
		if err := o.ro.Connect(); err != nil {
			p.closeOutputs(p.outputs[:i])
			return fmt.Errorf("%s: connecting: %w", o.label, err)
		}
	}

	metrics := make(chan telegraf.Metric, 1024)
	acc := agent.NewAccumulator(maker{p}, metrics)
	acc.SetPrecision(time.Nanosecond)

	// Route metrics to every output while the input runs, and until its
	// final gather has been read.
	routed := make(chan struct{})
	go func() {
		defer close(routed)
		for m := range metrics {
			p.route(m)
		}
	}()

	if err := in.Start(acc); err != nil {
		close(metrics)
		<-routed
		p.closeOutputs(p.outputs)
		return err
	}

	loops, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.gatherLoop(loops, in, acc)
	}()
	for _, o := range p.outputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.flushLoop(loops, o)
		}()
	}

	<-ctx.Done()
	cancel()
	wg.Wait()
	in.Stop() // the final gather goes through acc
	close(metrics)
	<-routed
	for _, o := range p.outputs {
		p.write(o, "final flush")
	}
	p.closeOutputs(p.outputs)
	return nil
}

func (p *Pipeline) gatherLoop(ctx context.Context, in telegraf.ServiceInput, acc telegraf.Accumulator) {
	t := time.NewTicker(time.Duration(p.agent.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := in.Gather(acc); err != nil {
				acc.AddError(err)
			}
		}
	}
}

func (p *Pipeline) flushLoop(ctx context.Context, o *output) {
	// Flush a moment after the gathers rather than at the same instant,
	// so that with equal intervals each gather is written at once instead
	// of one flush later.
	lag := min(time.Second, time.Duration(p.agent.Interval)/10)
	select {
	case <-ctx.Done():
		return
	case <-time.After(lag):
	}
	t := time.NewTicker(o.flush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.write(o, "flush")
		case <-o.ro.BatchReady:
			o.writeMu.Lock()
			err := o.ro.WriteBatch()
			o.writeMu.Unlock()
			if err != nil {
				p.log.Error("writing a full batch failed; the metrics stay buffered", "output", o.label, "err", err)
			}
		}
	}
}

// write sends everything o buffers; on failure the metrics stay in the
// buffer (up to metric_buffer_limit) for the next write.
func (p *Pipeline) write(o *output, why string) {
	o.writeMu.Lock()
	defer o.writeMu.Unlock()
	if err := o.ro.Write(); err != nil {
		p.log.Error(why+" failed; the metrics stay buffered", "output", o.label, "buffered", o.ro.BufferLength(), "err", err)
	}
}

// route hands m to every output; each gets its own copy but the last.
func (p *Pipeline) route(m telegraf.Metric) {
	if len(p.outputs) == 0 {
		m.Drop()
		return
	}
	for _, o := range p.outputs[:len(p.outputs)-1] {
		o.ro.AddMetric(m)
	}
	p.outputs[len(p.outputs)-1].ro.AddMetricNoCopy(m)
}

func (p *Pipeline) closeOutputs(outs []*output) {
	for _, o := range outs {
		o.ro.Close()
	}
}

// maker finishes each metric the input makes, as Telegraf's RunningInput
// does: global tags (host included) are added where the metric has none of
// that name.
type maker struct{ p *Pipeline }

func (maker) LogName() string { return "inputs.gstats" }

func (mk maker) MakeMetric(m telegraf.Metric) telegraf.Metric {
	for k, v := range mk.p.tags {
		if !m.HasTag(k) {
			m.AddTag(k, v)
		}
	}
	return m
}

func (mk maker) Log() telegraf.Logger { return mk.p.tlog }
