package logging

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestStdLogMapsLevels(t *testing.T) {
	tests := []struct {
		line  string
		level zapcore.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", zapcore.DebugLevel, "memberlist: Stream connection from=127.0.0.1:1"},
		{"[TRACE] x", zapcore.DebugLevel, "x"},
		{"[INFO] memberlist: Marking n1 as failed\n", zapcore.InfoLevel, "memberlist: Marking n1 as failed"},
		{"[WARN] memberlist: Was able to connect\n", zapcore.WarnLevel, "memberlist: Was able to connect"},
		{"[ERR] memberlist: Conflicting address\n", zapcore.ErrorLevel, "memberlist: Conflicting address"},
		{"[ERROR] boom\r\n", zapcore.ErrorLevel, "boom"},
		{"no prefix here\n", zapcore.InfoLevel, "no prefix here"},
		{"[WARNING] not ours\n", zapcore.InfoLevel, "[WARNING] not ours"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			l := StdLog(zap.New(core))
			l.Print(tt.line)
			entries := logs.AllUntimed()
			if len(entries) != 1 {
				t.Fatalf("got %d entries, want 1", len(entries))
			}
			if got := entries[0].Level; got != tt.level {
				t.Errorf("level = %v, want %v", got, tt.level)
			}
			if got := entries[0].Message; got != tt.msg {
				t.Errorf("message = %q, want %q", got, tt.msg)
			}
		})
	}
}

func TestStdLogRespectsLevel(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	l := StdLog(zap.New(core))
	l.Printf("[DEBUG] hidden")
	l.Printf("[INFO] hidden")
	l.Printf("[ERR] shown")
	if n := logs.Len(); n != 1 {
		t.Fatalf("got %d entries at warn level, want 1: %v", n, logs.AllUntimed())
	}
}
