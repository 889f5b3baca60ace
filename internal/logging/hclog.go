package logging

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// HCLog adapts a zap logger to hclog.Logger, for hashicorp/raft and
// raft-wal. Trace maps to zap's debug level. Levels below the zap core's
// level are dropped by zap; SetLevel can raise the floor further.
func HCLog(z *zap.Logger) hclog.Logger {
	if z == nil {
		z = zap.NewNop()
	}
	return &hcLogger{z: z.WithOptions(zap.AddCallerSkip(2)), level: new(atomic.Int32)}
}

type hcLogger struct {
	z       *zap.Logger
	name    string
	implied []interface{}
	// level is shared by loggers derived with With/Named, like hclog's.
	level *atomic.Int32
}

var _ hclog.Logger = (*hcLogger)(nil)

func zapLevel(l hclog.Level) zapcore.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return zapcore.DebugLevel
	case hclog.Warn:
		return zapcore.WarnLevel
	case hclog.Error:
		return zapcore.ErrorLevel
	}
	return zapcore.InfoLevel
}

func (h *hcLogger) enabled(l hclog.Level) bool {
	if floor := hclog.Level(h.level.Load()); floor != hclog.NoLevel && l < floor {
		return false
	}
	return h.z.Core().Enabled(zapLevel(l))
}

func (h *hcLogger) Log(level hclog.Level, msg string, args ...interface{}) {
	if level == hclog.Off || !h.enabled(level) {
		return
	}
	if ce := h.z.Check(zapLevel(level), msg); ce != nil {
		ce.Write(fields(args)...)
	}
}

// fields turns hclog's key/value pairs into zap fields.
func fields(args []interface{}) []zap.Field {
	out := make([]zap.Field, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		if i+1 >= len(args) {
			out = append(out, zap.Any("EXTRA_VALUE_AT_END", args[i]))
			break
		}
		out = append(out, zap.Any(key, args[i+1]))
	}
	return out
}

func (h *hcLogger) Trace(msg string, args ...interface{}) { h.Log(hclog.Trace, msg, args...) }
func (h *hcLogger) Debug(msg string, args ...interface{}) { h.Log(hclog.Debug, msg, args...) }
func (h *hcLogger) Info(msg string, args ...interface{})  { h.Log(hclog.Info, msg, args...) }
func (h *hcLogger) Warn(msg string, args ...interface{})  { h.Log(hclog.Warn, msg, args...) }
func (h *hcLogger) Error(msg string, args ...interface{}) { h.Log(hclog.Error, msg, args...) }

func (h *hcLogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hcLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hcLogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hcLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hcLogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hcLogger) ImpliedArgs() []interface{} { return h.implied }

func (h *hcLogger) With(args ...interface{}) hclog.Logger {
	c := *h
	c.z = h.z.With(fields(args)...)
	c.implied = append(append([]interface{}(nil), h.implied...), args...)
	return &c
}

func (h *hcLogger) Name() string { return h.name }

func (h *hcLogger) Named(name string) hclog.Logger {
	c := *h
	if h.name != "" {
		c.name = h.name + "." + name
	} else {
		c.name = name
	}
	c.z = h.z.Named(name)
	return &c
}

func (h *hcLogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	// zap names only append; keep the base logger's and add this one.
	c.z = h.z.Named(name)
	return &c
}

func (h *hcLogger) SetLevel(level hclog.Level) { h.level.Store(int32(level)) }

func (h *hcLogger) GetLevel() hclog.Level {
	if l := hclog.Level(h.level.Load()); l != hclog.NoLevel {
		return l
	}
	switch {
	case h.z.Core().Enabled(zapcore.DebugLevel):
		return hclog.Debug
	case h.z.Core().Enabled(zapcore.InfoLevel):
		return hclog.Info
	case h.z.Core().Enabled(zapcore.WarnLevel):
		return hclog.Warn
	}
	return hclog.Error
}

func (h *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hcLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	w := &hcStdWriter{h: h}
	if opts != nil {
		w.infer = opts.InferLevels || opts.InferLevelsWithTimestamp
		w.force = opts.ForceLevel
	}
	return w
}

// hcStdWriter turns lines written through a *log.Logger into log calls,
// reading "[DEBUG]"-style prefixes when asked to.
type hcStdWriter struct {
	h     *hcLogger
	infer bool
	force hclog.Level
}

func (w *hcStdWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, " \r\n\t"))
	level := hclog.Info
	if w.force != hclog.NoLevel {
		level = w.force
	}
	if w.infer {
		level, line = inferLevel(line, level)
	}
	w.h.Log(level, line)
	return len(p), nil
}

// inferLevel reads and strips a "[LEVEL]" prefix anywhere at the start of
// a line (a timestamp may precede it).
func inferLevel(line string, def hclog.Level) (hclog.Level, string) {
	prefixes := []struct {
		tag   string
		level hclog.Level
	}{
		{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
		{"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error},
	}
	for _, p := range prefixes {
		if i := strings.Index(line, p.tag); i >= 0 && i < 32 {
			return p.level, strings.TrimSpace(line[i+len(p.tag):])
		}
	}
	return def, line
}
