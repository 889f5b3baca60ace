// Package logging builds the one zap logger every component uses, and
// adapts it for the libraries that want their own logger types (raft's
// hclog, memberlist's *log.Logger).
package logging

import (
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config selects level and encoding.
type Config struct {
	// Level is debug, info, warn or error.
	Level string
	// Format is "json" (default) or "console".
	Format string
	// Output receives the log lines (nil: stderr).
	Output io.Writer
	// AtomicLevel, when set, is used as the logger's level (Level above sets
	// it), so that the caller can change it later.
	AtomicLevel *zap.AtomicLevel
}

// New returns a zap logger writing to stderr (or cfg.Output).
func New(cfg Config) (*zap.Logger, error) {
	level := zapcore.InfoLevel
	if cfg.Level != "" {
		if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", cfg.Level)
		}
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	var enc zapcore.Encoder
	switch cfg.Format {
	case "", "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("log format %q: want json or console", cfg.Format)
	}
	var out zapcore.WriteSyncer = os.Stderr
	if cfg.Output != nil {
		out = zapcore.AddSync(cfg.Output)
	}
	var enabler zapcore.LevelEnabler = level
	if cfg.AtomicLevel != nil {
		cfg.AtomicLevel.SetLevel(level)
		enabler = cfg.AtomicLevel
	}
	core := zapcore.NewCore(enc, zapcore.Lock(out), enabler)
	return zap.New(core), nil
}
