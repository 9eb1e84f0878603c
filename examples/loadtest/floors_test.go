package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFloorsTable checks the table that floors.sh prints from the figures it recorded: it runs
// the script with RECORDS set to testdata/records.tsv (every figure recorded by a run of
// ROUNDS=3 PRESENCE=1 on 2026-12-03 at 19:12 UTC, with the cost of a system call and of a page
// fault, and the time of a CPU-bound loop on each CPU, in each round), which measures nothing,
// and compares its output with testdata/floors.md, the table that run printed (with the rows
// added since, empty). It runs with every awk on the PATH as well as with awk itself (gawk and
// mawk differ: the presence rows once stopped gawk only).
func TestFloorsTable(t *testing.T) {
	want, err := os.ReadFile("testdata/floors.md")
	if err != nil {
		t.Fatal(err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("floors.sh needs bash, which is not on the PATH")
	}
	if _, err := exec.LookPath("awk"); err != nil {
		t.Skip("floors.sh needs awk, which is not on the PATH")
	}
	awks := []string{"awk"}
	for _, name := range []string{"gawk", "mawk", "original-awk"} {
		if _, err := exec.LookPath(name); err == nil {
			awks = append(awks, name)
		}
	}
	records, err := filepath.Abs("testdata/records.tsv")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range awks {
		t.Run(name, func(t *testing.T) {
			path := os.Getenv("PATH")
			if name != "awk" {
				// A directory of its own whose awk is this one, first on the PATH.
				dir := t.TempDir()
				target, _ := exec.LookPath(name)
				script := "#!/bin/sh\nexec " + target + " \"$@\"\n"
				if err := os.WriteFile(filepath.Join(dir, "awk"), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
				path = dir + string(os.PathListSeparator) + path
			}
			cmd := exec.Command(bash, "floors.sh")
			cmd.Env = append(os.Environ(), "PATH="+path, "RECORDS="+records)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("floors.sh: %v\n%s", err, stderr.String())
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("floors.sh printed (-want +got):\n%s", diff)
			}
		})
	}
}
