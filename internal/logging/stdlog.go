package logging

import (
	"bytes"
	"log"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// StdLog returns a *log.Logger (what memberlist wants) that writes through
// z, mapping the "[TRACE]", "[DEBUG]", "[INFO]", "[WARN]", "[ERR]" and
// "[ERROR]" prefixes HashiCorp libraries put on each line to zap levels and
// stripping them. A line without a known prefix is logged at info.
func StdLog(z *zap.Logger) *log.Logger {
	return log.New(&stdWriter{z: z.WithOptions(zap.AddCallerSkip(3))}, "", 0)
}

type stdWriter struct{ z *zap.Logger }

var levelPrefixes = []struct {
	prefix []byte
	level  zapcore.Level
}{
	{[]byte("[TRACE]"), zapcore.DebugLevel},
	{[]byte("[DEBUG]"), zapcore.DebugLevel},
	{[]byte("[INFO]"), zapcore.InfoLevel},
	{[]byte("[WARN]"), zapcore.WarnLevel},
	{[]byte("[ERR]"), zapcore.ErrorLevel},
	{[]byte("[ERROR]"), zapcore.ErrorLevel},
}

// Write logs one line per call (log.Logger writes each entry in one call).
func (w *stdWriter) Write(p []byte) (int, error) {
	n := len(p)
	msg := bytes.TrimRight(p, "\r\n")
	level := zapcore.InfoLevel
	for _, lp := range levelPrefixes {
		if bytes.HasPrefix(msg, lp.prefix) {
			level = lp.level
			msg = bytes.TrimLeft(msg[len(lp.prefix):], " ")
			break
		}
	}
	if ce := w.z.Check(level, string(msg)); ce != nil {
		ce.Write()
	}
	return n, nil
}
