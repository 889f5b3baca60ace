package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkLeaseSave (issue 17 P2) is the disk cost one agent adds to a
// pause: the agent persists its lease durably twice per Pause (before
// pausing its node and with the ack). Per lease placement (tmpfs, as on
// BenchmarkPauseFanout's per-host leases, and the shared disk under
// TMPDIR):
//
//   - save: one whole store.save (temp file, write, fsync, rename,
//     directory fsync), ns/op;
//
//   - fsync: the lease file's fsync alone after rewriting it in place,
//     reported as fsync-p50-ns and fsync-p99-ns.
//
//     go test -run '^$' -bench '^BenchmarkLeaseSave$' -benchtime 200x ./agent
func BenchmarkLeaseSave(b *testing.B) {
	p := persisted{Lease: &leaseRecord{
		OpID: "op-0123456789abcdef", Epoch: 7, Phase: phaseHeld, LeaseMS: 30000,
		DeadlineUnixNS: time.Now().Add(30 * time.Second).UnixNano(), StartedUnixNS: time.Now().UnixNano(),
		Ack: make([]byte, 160), // a PauseResponse in wire form is of this order
	}}
	dirs := []struct{ name, root string }{{"tmpfs", "/dev/shm"}, {"shared", os.TempDir()}}
	for _, d := range dirs {
		dir, err := os.MkdirTemp(d.root, "stillpoint-lease-bench-")
		if err != nil {
			b.Fatalf("lease directory under %s: %v", d.root, err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(dir) })
		s := store{dir: dir}
		b.Run("dir="+d.name+"/save", func(b *testing.B) {
			for b.Loop() {
				if err := s.save(p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("dir="+d.name+"/fsync", func(b *testing.B) {
			if err := s.save(p); err != nil {
				b.Fatal(err)
			}
			f, err := os.OpenFile(filepath.Join(dir, stateFile), os.O_RDWR, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			body, err := os.ReadFile(f.Name())
			if err != nil {
				b.Fatal(err)
			}
			var took []time.Duration
			for b.Loop() {
				if _, err := f.WriteAt(body, 0); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := f.Sync(); err != nil {
					b.Fatalf("fsync %s: %v", f.Name(), err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[(len(took)-1)/2]), "fsync-p50-ns")
			b.ReportMetric(float64(took[max(0, (len(took)*99+99)/100-1)]), "fsync-p99-ns")
		})
	}
}
