// Package logging adapts log/slog to the telegraf.Logger interface the
// plugin logs through, for hosts other than Telegraf; writes slog records in
// the "I! message" form Telegraf's execd input reads; and turns the log
// lines of Telegraf's libraries into slog records.
package logging

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/influxdata/telegraf"
)

// Logger is a telegraf.Logger writing to a slog.Logger.
type Logger struct {
	l *slog.Logger
}

// New returns a telegraf.Logger that writes through l.
func New(l *slog.Logger) *Logger {
	return &Logger{l: l}
}

var _ telegraf.Logger = (*Logger)(nil)

// LevelTrace is below slog's Debug; Telegraf's Trace maps to it.
const LevelTrace = slog.LevelDebug - 4

// Level reports the most verbose level the handler writes.
func (g *Logger) Level() telegraf.LogLevel {
	ctx := context.Background()
	switch {
	case g.l.Enabled(ctx, LevelTrace):
		return telegraf.Trace
	case g.l.Enabled(ctx, slog.LevelDebug):
		return telegraf.Debug
	case g.l.Enabled(ctx, slog.LevelInfo):
		return telegraf.Info
	case g.l.Enabled(ctx, slog.LevelWarn):
		return telegraf.Warn
	}
	return telegraf.Error
}

// AddAttribute adds key=value to every later record.
func (g *Logger) AddAttribute(key string, value any) {
	g.l = g.l.With(key, value)
}

func (g *Logger) log(level slog.Level, msg string) {
	g.l.Log(context.Background(), level, msg)
}

// Errorf logs at error level.
func (g *Logger) Errorf(format string, args ...any) {
	g.log(slog.LevelError, fmt.Sprintf(format, args...))
}

// Error logs at error level.
func (g *Logger) Error(args ...any) { g.log(slog.LevelError, fmt.Sprint(args...)) }

// Warnf logs at warning level.
func (g *Logger) Warnf(format string, args ...any) {
	g.log(slog.LevelWarn, fmt.Sprintf(format, args...))
}

// Warn logs at warning level.
func (g *Logger) Warn(args ...any) { g.log(slog.LevelWarn, fmt.Sprint(args...)) }

// Infof logs at info level.
func (g *Logger) Infof(format string, args ...any) {
	g.log(slog.LevelInfo, fmt.Sprintf(format, args...))
}

// Info logs at info level.
func (g *Logger) Info(args ...any) { g.log(slog.LevelInfo, fmt.Sprint(args...)) }

// Debugf logs at debug level.
func (g *Logger) Debugf(format string, args ...any) {
	g.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}

// Debug logs at debug level.
func (g *Logger) Debug(args ...any) { g.log(slog.LevelDebug, fmt.Sprint(args...)) }

// Tracef logs at trace level.
func (g *Logger) Tracef(format string, args ...any) { g.log(LevelTrace, fmt.Sprintf(format, args...)) }

// Trace logs at trace level.
func (g *Logger) Trace(args ...any) { g.log(LevelTrace, fmt.Sprint(args...)) }

// ParseLevel maps a level name (error, warn, info, debug, trace) to slog.
func ParseLevel(name string) (slog.Level, error) {
	switch name {
	case "error":
		return slog.LevelError, nil
	case "warn":
		return slog.LevelWarn, nil
	case "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "trace":
		return LevelTrace, nil
	}
	return 0, fmt.Errorf("log level %q is not one of error, warn, info, debug, trace", name)
}

// PrefixHandler is a slog.Handler for a process run by Telegraf's execd
// input: each record is one line starting with the level prefix execd reads
// ("E! ", "W! ", "I! ", "D! "), then the message and its attributes as
// key=value pairs. execd adds the time and the plugin name itself.
type PrefixHandler struct {
	w     io.Writer
	mu    *sync.Mutex
	level slog.Leveler
	attrs []slog.Attr
	group string
}

// NewPrefixHandler returns a PrefixHandler writing records at level or
// above to w.
func NewPrefixHandler(w io.Writer, level slog.Leveler) *PrefixHandler {
	return &PrefixHandler{w: w, mu: new(sync.Mutex), level: level}
}

// Enabled reports whether records at l are written.
func (h *PrefixHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// Handle writes one line for r.
func (h *PrefixHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(levelPrefix(r.Level))
	b.WriteString(oneLine(r.Message))
	write := func(a slog.Attr) {
		if a.Equal(slog.Attr{}) {
			return
		}
		b.WriteByte(' ')
		b.WriteString(a.Key)
		b.WriteByte('=')
		v := a.Value.Resolve().String()
		if v == "" || strings.ContainsAny(v, " \t\"=") {
			v = strconv.Quote(v)
		}
		b.WriteString(oneLine(v))
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(func(a slog.Attr) bool {
		write(h.qualify(a))
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *PrefixHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = slices.Clip(h.attrs)
	for _, a := range attrs {
		c.attrs = append(c.attrs, h.qualify(a))
	}
	return &c
}

// qualify prefixes a's key with the handler's group.
func (h *PrefixHandler) qualify(a slog.Attr) slog.Attr {
	if h.group != "" {
		a.Key = h.group + "." + a.Key
	}
	return a
}

// WithGroup returns a handler that qualifies later attribute keys.
func (h *PrefixHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

// levelPrefix is Telegraf's level indicator for l.
func levelPrefix(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "E! "
	case l >= slog.LevelWarn:
		return "W! "
	case l >= slog.LevelInfo:
		return "I! "
	case l >= slog.LevelDebug:
		return "D! "
	}
	return "T! "
}

// oneLine keeps a record on one line: execd reads stderr line by line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}

// LineWriter is an io.Writer that turns lines in Telegraf's log format
// ("2006-01-02T15:04:05Z I! [outputs.file] message") into slog records, so
// the Telegraf libraries a host uses log in the host's format. Lines in
// another format are logged whole at info level.
type LineWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

// NewLineWriter returns a LineWriter logging to log.
func NewLineWriter(log *slog.Logger) *LineWriter {
	return &LineWriter{log: log}
}

// Write logs every complete line of p; a partial line waits for the rest.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.logLine(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // never hold an endless line
		w.logLine(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *LineWriter) logLine(line string) {
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return
	}
	level, msg, attrs := ParseTelegrafLine(line)
	w.log.Log(context.Background(), level, msg, attrs...)
}

// ParseTelegrafLine splits one Telegraf log line into its level, message
// and the plugin it names ("plugin" attribute). A line without a level
// indicator is returned whole at info level.
func ParseTelegrafLine(line string) (slog.Level, string, []any) {
	rest := line
	if ts, after, ok := strings.Cut(rest, " "); ok && len(ts) >= 20 && ts[4] == '-' && ts[10] == 'T' {
		rest = after
	}
	if len(rest) < 3 || rest[1] != '!' || rest[2] != ' ' {
		return slog.LevelInfo, line, nil
	}
	var level slog.Level
	switch rest[0] {
	case 'E':
		level = slog.LevelError
	case 'W':
		level = slog.LevelWarn
	case 'I':
		level = slog.LevelInfo
	case 'D':
		level = slog.LevelDebug
	case 'T':
		level = LevelTrace
	default:
		return slog.LevelInfo, line, nil
	}
	msg := rest[3:]
	var attrs []any
	if strings.HasPrefix(msg, "[") {
		if name, after, ok := strings.Cut(msg[1:], "] "); ok && !strings.ContainsAny(name, " []") {
			attrs = []any{"plugin", name}
			msg = after
			// Telegraf's redirected logger repeats the plugin as
			// "(category=outputs,plugin=file) "; the attribute says it.
			if strings.HasPrefix(msg, "(category=") {
				if _, after, ok := strings.Cut(msg, ") "); ok {
					msg = after
				}
			}
		}
	}
	return level, msg, attrs
}
