package plan

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestExampleDecodes(t *testing.T) {
	p, err := Decode([]byte(Example()))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(p, nil); err != nil {
		t.Fatal(err)
	}
	if len(p.GetGroups()) != 2 || p.GetGroups()[0].GetName() != "ledger-databases" || p.GetGroups()[1].GetName() != "auditor-databases" {
		t.Fatalf("example groups = %v", p.GetGroups())
	}
	if p.GetGroups()[0].GetHooks()[0].GetOnError() != pb.HookOnError_HOOK_ON_ERROR_ABORT {
		t.Fatal("on_error abort not decoded")
	}
	env := testEnv()
	if err := Validate(p, env); err != nil {
		t.Fatalf("example against a ledger-1/auditor-1 roster: %v", err)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	p := goodPlan()
	p.MissedRuns = pb.MissedRunPolicy_MISSED_RUN_POLICY_SKIP
	p.Groups[0].After = nil
	p.Groups[1].After = []string{"ledger-databases"}
	p.Groups[0].Hooks[0].OnError = pb.HookOnError_HOOK_ON_ERROR_ABORT
	p.After[0].OnError = pb.HookOnError_HOOK_ON_ERROR_ABORT
	p.Clusters = []string{"ledger", "auditor"}
	b, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"min_hold: 5s", "max_age: 720h0m0s", "kind: dynamodb", "method: pitr", "on_error: continue", "missed_runs: skip"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("encoded plan lacks %q:\n%s", want, b)
		}
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !proto.Equal(p, got) {
		t.Fatalf("round trip differs:\nwant %v\ngot  %v", prototext.Format(p), prototext.Format(got))
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "name: x\ngroups:\n  - name: g\n    hoks: []\n", []string{`line 4: unknown key "hoks" in a group (it takes: name, after, hooks)`}},
		{"unknown top key", "name: x\nschedul: \"@daily\"\n", []string{`line 2: unknown key "schedul" in a plan (it takes: name, clusters`}},
		{"several unknown", "name: x\nfoo: 1\ndatabases:\n  - name: d\n    zone: UTC\n", []string{`line 2: unknown key "foo"`, `line 5: unknown key "zone" in a database`}},
		{"on_error in db hook", "name: x\ndatabases:\n  - name: d\n    hook: {agent: a, hook: h, on_error: abort}\n", []string{`unknown key "on_error" in a database's or delete hook (it takes: agent, hook)`}},
		{"duration without unit", "name: x\nmin_hold: 5\n", []string{`line 2: "5" is not a duration: write it with units`}},
		{"bad duration", "name: x\nretention:\n  max_age: 30d\n", []string{`line 3: "30d" is not a duration`}},
		{"sub-ms duration", "name: x\nmin_hold: 1500us\n", []string{`min_hold 1.5ms: use whole milliseconds`}},
		{"enum words", "name: x\ngroups:\n  - name: g\n    hooks:\n      - {agent: a, hook: h, on_error: ABORT}\ndatabases:\n  - {name: d, service: ledger, kind: postgresql, method: wal}\nmissed_runs: never\n",
			[]string{`line 5: on_error "ABORT" is not one of: abort, continue`, `line 7: kind "postgresql" is not one of: postgres, mysql, cassandra, dynamodb, cosmos, other`,
				`line 7: method "wal" is not one of: pitr, dump, snapshot`, `line 8: missed_runs "never" is not one of: run_once, skip`}},
		{"empty", "", []string{"plan file is empty"}},
		{"two documents", "name: a\n---\nname: b\n", []string{"more than one YAML document"}},
		{"syntax", "name: [\n", []string{"plan file: yaml: line"}},
		{"wrong type", "name: x\nclusters: ledger\n", []string{"line 2: cannot unmarshal !!str `ledger` into []string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.yaml))
			if err == nil {
				t.Fatal("decoded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in\n%v", w, err)
				}
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(Example()))
	f.Add([]byte("name: x\ngroups:\n  - name: g\n    hooks:\n      - {agent: a, hook: h, on_error: continue}\n"))
	f.Add([]byte("name: x\nretention: {keep_last: 3, max_age: 1h}\nmin_hold: 2s\nmissed_runs: skip\n"))
	f.Add([]byte("name: x\ndatabases:\n  - {name: d, service: auditor, kind: cosmos, method: pitr, time_zone: Asia/Tokyo}\n"))
	f.Add([]byte("name: &a x\nclusters: [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		_ = Validate(p, nil)
		out, err := Encode(p)
		if err != nil {
			t.Fatalf("decoded plan does not encode: %v", err)
		}
		again, err := Decode(out)
		if err != nil {
			t.Fatalf("encoded plan does not decode: %v\n%s", err, out)
		}
		if !proto.Equal(p, again) {
			t.Fatalf("round trip differs:\n%v\n%v", p, again)
		}
	})
}
