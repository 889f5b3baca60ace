package logging

import (
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestHCLog(t *testing.T) {
	tests := []struct {
		name      string
		core      zapcore.Level
		call      func(l hclog.Logger)
		wantMsg   string
		wantLevel zapcore.Level
		wantField map[string]interface{}
		wantNone  bool
	}{
		{name: "info with fields", core: zapcore.DebugLevel, call: func(l hclog.Logger) { l.Info("elected", "term", 3, "id", "s1") },
			wantMsg: "elected", wantLevel: zapcore.InfoLevel, wantField: map[string]interface{}{"term": int64(3), "id": "s1"}},
		{name: "trace maps to debug", core: zapcore.DebugLevel, call: func(l hclog.Logger) { l.Trace("t") }, wantMsg: "t", wantLevel: zapcore.DebugLevel},
		{name: "debug dropped at info", core: zapcore.InfoLevel, call: func(l hclog.Logger) { l.Debug("d") }, wantNone: true},
		{name: "error", core: zapcore.InfoLevel, call: func(l hclog.Logger) { l.Error("boom", "error", "x") }, wantMsg: "boom", wantLevel: zapcore.ErrorLevel},
		{name: "with and named", core: zapcore.InfoLevel, call: func(l hclog.Logger) { l.Named("raft").With("node", "s2").Warn("w") },
			wantMsg: "w", wantLevel: zapcore.WarnLevel, wantField: map[string]interface{}{"node": "s2"}},
		{name: "SetLevel raises floor", core: zapcore.DebugLevel, call: func(l hclog.Logger) { l.SetLevel(hclog.Warn); l.Info("i") }, wantNone: true},
		{name: "std writer infers level", core: zapcore.InfoLevel, call: func(l hclog.Logger) {
			l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[WARN] memberlist: slow")
		}, wantMsg: "memberlist: slow", wantLevel: zapcore.WarnLevel},
		{name: "odd args", core: zapcore.InfoLevel, call: func(l hclog.Logger) { l.Info("odd", "k") }, wantMsg: "odd", wantLevel: zapcore.InfoLevel,
			wantField: map[string]interface{}{"EXTRA_VALUE_AT_END": "k"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(tc.core)
			l := HCLog(zap.New(core))
			tc.call(l)
			entries := logs.AllUntimed()
			if tc.wantNone {
				if len(entries) != 0 {
					t.Fatalf("got %d entries, want none", len(entries))
				}
				return
			}
			if len(entries) != 1 {
				t.Fatalf("got %d entries, want 1", len(entries))
			}
			e := entries[0]
			if e.Message != tc.wantMsg || e.Level != tc.wantLevel {
				t.Fatalf("entry %q at %s, want %q at %s", e.Message, e.Level, tc.wantMsg, tc.wantLevel)
			}
			got := e.ContextMap()
			for k, v := range tc.wantField {
				if got[k] != v {
					t.Errorf("field %s = %#v, want %#v", k, got[k], v)
				}
			}
		})
	}
}

func TestHCLogLevels(t *testing.T) {
	core, _ := observer.New(zapcore.InfoLevel)
	l := HCLog(zap.New(core))
	if l.IsDebug() || !l.IsInfo() || l.GetLevel() != hclog.Info {
		t.Fatalf("IsDebug=%v IsInfo=%v GetLevel=%v", l.IsDebug(), l.IsInfo(), l.GetLevel())
	}
	if n := l.Named("a").Named("b").Name(); n != "a.b" {
		t.Fatalf("name = %q", n)
	}
}
