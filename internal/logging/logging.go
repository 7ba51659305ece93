// Package logging adapts log/slog to the telegraf.Logger interface the
// plugin logs through, for hosts other than Telegraf.
package logging

import (
	"context"
	"fmt"
	"log/slog"

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
