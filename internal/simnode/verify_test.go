package simnode

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	at := time.Unix(1700000000, 0)
	half := func(id, acct string, amt int64) Half { return Half{TxnID: id, Account: acct, Amount: amt, At: at} }
	state := func(initial int64, hs ...Half) StoreState {
		s := StoreState{InitialTotal: initial, Balance: initial, Halves: map[string]Half{}}
		for _, h := range hs {
			s.Balance += h.Amount
			s.Halves[h.TxnID] = h
		}
		return s
	}
	cases := []struct {
		name    string
		a, b    StoreState
		ok      bool
		wantMsg string
		check   func(t *testing.T, r Report)
	}{
		{name: "empty", a: state(100), b: state(100), ok: true},
		{
			name: "paired transfers",
			a:    state(100, half("t1", "a-0", -5), half("t2", "a-1", -7)),
			b:    state(100, half("t1", "b-0", 5), half("t2", "b-0", 7)),
			ok:   true,
			check: func(t *testing.T, r Report) {
				if r.Paired != 2 || r.ExpectedTotal != 200 || r.ActualTotal != 200 {
					t.Errorf("report %+v", r)
				}
			},
		},
		{
			name:    "debit without credit",
			a:       state(100, half("t1", "a-0", -5)),
			b:       state(100),
			wantMsg: "1 debits in store A have no credit",
			check: func(t *testing.T, r Report) {
				if r.MissingCredit != 1 || r.ActualTotal != 195 || len(r.Samples) != 1 || !strings.Contains(r.Samples[0], "t1") {
					t.Errorf("report %+v", r)
				}
			},
		},
		{
			name:    "credit without debit",
			a:       state(100),
			b:       state(100, half("t9", "b-0", 3)),
			wantMsg: "1 credits in store B have no debit",
		},
		{
			name:    "amounts do not cancel",
			a:       state(100, half("t1", "a-0", -5)),
			b:       state(100, half("t1", "b-0", 6)),
			wantMsg: "halves that do not cancel",
		},
		{
			name: "balances off the journal",
			a: func() StoreState {
				s := state(100, half("t1", "a-0", -5))
				s.Balance += 2
				return s
			}(),
			b:       state(100, half("t1", "b-0", 5)),
			wantMsg: "store A balances off its journal by 2",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(tc.a, tc.b)
			if r.Consistent() != tc.ok {
				t.Fatalf("Consistent() = %v, want %v (%+v)", r.Consistent(), tc.ok, r)
			}
			err := r.Err()
			if tc.ok != (err == nil) {
				t.Fatalf("Err() = %v", err)
			}
			if !tc.ok {
				if !errors.Is(err, ErrInvariant) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("Err() = %v, want ErrInvariant mentioning %q", err, tc.wantMsg)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestSnapshotMemoryNeedsAPair(t *testing.T) {
	a, _ := NewMemoryStores()
	_, b := NewMemoryStores()
	if _, _, err := SnapshotMemory(a, b); err == nil {
		t.Fatal("snapshot across two unrelated pairs succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Config)
		want []string // substrings, all required; none means valid
	}{
		{name: "default", mut: func(*Config) {}},
		{name: "port zero", mut: func(c *Config) { c.Listen = "127.0.0.1:0" }},
		{name: "no port", mut: func(c *Config) { c.Listen = "127.0.0.1" }, want: []string{`listen address "127.0.0.1"`}},
		{name: "bad port", mut: func(c *Config) { c.Listen = "127.0.0.1:99999" }, want: []string{`port "99999"`}},
		{name: "hostname", mut: func(c *Config) { c.Listen = "example.com:1" }, want: []string{"not an IP address"}},
		{name: "bad mode", mut: func(c *Config) { c.Mode = 0 }, want: []string{"mode"}},
		{
			name: "every problem at once",
			mut: func(c *Config) {
				c.ID = ""
				c.DrainDelay = -1
				c.DefaultMaxPauseWait = 0
				c.Workload.Accounts = 0
				c.Workload.Enabled = true
				c.Workload.Workers = 0
				c.StoreA, _ = NewMemoryStores()
			},
			want: []string{"empty ID", "drain delay", "default max pause wait", "0 accounts", "0 workers", "StoreA and StoreB"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mut(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"ledger": Ledger, "auditor": Ledger, "scalardb": ScalarDB} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseMode("cassandra"); err == nil || !strings.Contains(err.Error(), "cassandra") {
		t.Errorf("ParseMode(cassandra) = %v", err)
	}
}
