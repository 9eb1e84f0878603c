package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// These tests work in one temporary module shared by the whole test binary: it requires this
// repository through a replace directive and builds offline from the module cache.

var (
	tempModuleOnce sync.Once
	tempModuleDir  string
	tempModuleErr  error
)

// tempModule returns the shared temporary module, and sets the environment that keeps the go
// command offline for the rest of t.
func tempModule(t *testing.T) string {
	t.Helper()
	tempModuleOnce.Do(func() {
		tempModuleDir, tempModuleErr = makeTempModule()
	})
	if tempModuleErr != nil {
		t.Fatal(tempModuleErr)
	}
	t.Setenv("GOFLAGS", "-mod=mod")
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOSUMDB", "off")
	t.Setenv("GOWORK", "off")
	return tempModuleDir
}

// tempPackage returns the directory of a new package, name, in the module of tempModule, with
// nothing in it: what an earlier run of the same test wrote there (go test -count=2 runs each
// test twice in one process, against one module) is removed first.
func tempPackage(t *testing.T, name string) (mod, dir string) {
	t.Helper()
	mod = tempModule(t)
	dir = filepath.Join(mod, name)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	return mod, dir
}

func makeTempModule() (string, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "ephemeralgen-test-")
	if err != nil {
		return "", err
	}
	gomod := "module example.com/app\n\ngo 1.26\n\n" +
		"require github.com/ephemeral-go/ephemeral v0.0.0-00010101000000-000000000000\n\n" +
		"replace github.com/ephemeral-go/ephemeral => " + root + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o666); err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o666)
}

// writeFiles writes name → content files under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o666); err != nil {
			t.Fatal(err)
		}
	}
}

// runIn runs the command in dir and returns its exit status and output.
func runIn(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Chdir(dir)
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

const checkSource = `package chk

//go:generate go tool ephemeralgen

//ephemeral:store id=presence ttl=30s key=Room,UserID
type Presence struct {
	Room   string ` + "`json:\"room\"`" + `
	UserID string ` + "`json:\"userId\"`" + `
}
`

func TestCheck(t *testing.T) {
	_, dir := tempPackage(t, "chk")
	writeTree(t, dir, map[string]string{"presence.go": checkSource})
	out := filepath.Join(dir, "presence_ephemeral.go")

	code, stdout, stderr := runIn(t, dir, "-check")
	if code != 1 || stdout != "missing: presence_ephemeral.go (run go generate ./...)\n" || stderr != "" {
		t.Fatalf("-check without output: %d %q %q", code, stdout, stderr)
	}

	code, stdout, stderr = runIn(t, dir, "-v")
	if code != 0 || stdout != "wrote presence_ephemeral.go\n" || stderr != "" {
		t.Fatalf("generate: %d %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = runIn(t, dir, "-v")
	if code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("generate again (nothing to write): %d %q %q", code, stdout, stderr)
	}
	if code, stdout, stderr = runIn(t, dir, "-check"); code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("-check when fresh: %d %q %q", code, stdout, stderr)
	}

	// A changed directive makes the file stale; -check shows the diff and writes nothing.
	writeTree(t, dir, map[string]string{"presence.go": strings.Replace(checkSource, "ttl=30s", "ttl=45s", 1)})
	before, _ := os.ReadFile(out)
	code, stdout, _ = runIn(t, dir, "-check")
	if code != 1 || !strings.Contains(stdout, "--- presence_ephemeral.go (on disk)\n+++ presence_ephemeral.go (generated)\n") ||
		!strings.HasSuffix(stdout, "\nstale: presence_ephemeral.go (run go generate ./...)\n") ||
		!strings.Contains(stdout, "\n-") || !strings.Contains(stdout, "-\t\tTTL:   30 * time.Second") || !strings.Contains(stdout, "+\t\tTTL:   45 * time.Second") {
		t.Fatalf("-check when stale: %d\n%s", code, stdout)
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
		t.Fatal("-check wrote the file")
	}

	// A broken generated file and hand-written code that uses the generated names do not stop
	// generation.
	writeTree(t, dir, map[string]string{
		"presence_ephemeral.go": string(before) + "\nfunc broken() { this is not Go\n",
		"use.go":                "package chk\n\nfunc use() { _, _ = NewPresenceStore(nil) }\n",
	})
	if code, stdout, stderr = runIn(t, dir); code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("generate over a broken file: %d %q %q", code, stdout, stderr)
	}
	if code, stdout, stderr = runIn(t, dir, "-check"); code != 0 {
		t.Fatalf("-check after regenerating: %d %q %q", code, stdout, stderr)
	}

	// Without its directive the generated file is orphaned: -check names it, generating deletes it.
	writeTree(t, dir, map[string]string{
		"presence.go": strings.Replace(checkSource, "//ephemeral:store", "// no longer a store:", 1),
		"use.go":      "package chk\n",
	})
	code, stdout, _ = runIn(t, dir, "-check")
	if code != 1 || stdout != "orphaned: presence_ephemeral.go (no directive left behind it; delete it or run go generate ./...)\n" {
		t.Fatalf("-check with an orphan: %d %q", code, stdout)
	}
	if code, stdout, _ = runIn(t, dir, "-v"); code != 0 || stdout != "deleted presence_ephemeral.go\n" {
		t.Fatalf("generate with an orphan: %d %q", code, stdout)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("orphan not deleted: %v", err)
	}
}

// TestCheckAcrossPackages checks that -check reports both the problems of one package and the
// stale, missing and orphaned files of the others.
func TestCheckAcrossPackages(t *testing.T) {
	_, dir := tempPackage(t, "multi")
	writeTree(t, dir, map[string]string{
		"bad/bad.go":          "package bad\n\n//ephemeral:store id=x ttl=soon\ntype T struct{}\n",
		"good/good.go":        "package good\n\n//go:generate go tool ephemeralgen\n\n//ephemeral:store id=g ttl=1s\ntype G struct{}\n",
		"gone/gone.go":        "package gone\n",
		"gone/x_ephemeral.go": "// Code generated by ephemeralgen. DO NOT EDIT.\n\npackage gone\n",
	})
	code, stdout, stderr := runIn(t, dir, "-check", "./...")
	wantOut := "missing: good/good_ephemeral.go (run go generate ./...)\n" +
		"orphaned: gone/x_ephemeral.go (no directive left behind it; delete it or run go generate ./...)\n"
	wantErr := "bad/bad.go:3:24: ttl=soon is not a duration; write a Go duration such as ttl=30s, 5m or 1h30m\n"
	if code != 1 || stdout != wantOut || stderr != wantErr {
		t.Fatalf("got %d\n%s\n%s\nwant 1\n%s\n%s", code, stdout, stderr, wantOut, wantErr)
	}
	// Generating writes nothing while a package has a problem.
	if code, _, _ := runIn(t, dir, "./..."); code != 1 {
		t.Fatalf("generate with a problem: exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "good", "good_ephemeral.go")); !os.IsNotExist(err) {
		t.Fatalf("a file was written despite a problem in another package: %v", err)
	}
}

func TestProblemsExitOne(t *testing.T) {
	_, dir := tempPackage(t, "bad")
	writeTree(t, dir, map[string]string{"bad.go": "package bad\n\n//ephemeral:store id=x ttl=soon\ntype T struct{}\n"})
	code, stdout, stderr := runIn(t, dir)
	want := "bad.go:3:24: ttl=soon is not a duration; write a Go duration such as ttl=30s, 5m or 1h30m\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Fatalf("got %d %q %q, want 1 and %q", code, stdout, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad_ephemeral.go")); !os.IsNotExist(err) {
		t.Fatalf("a file was written despite problems: %v", err)
	}
}

// TestWarning checks that a comment that looks like a directive is reported as a warning, which
// does not stop generation: the package's real directive still gets its file.
func TestWarning(t *testing.T) {
	_, dir := tempPackage(t, "warn")
	writeTree(t, dir, map[string]string{"warn.go": "package warn\n\n// ephemeral:store id=a ttl=1s\ntype A struct{}\n\n//ephemeral:store id=b ttl=1s\ntype B struct{}\n"})
	code, stdout, stderr := runIn(t, dir, "-v")
	want := "warn.go:3:1: warning: this comment is not a directive and is ignored; write //ephemeral:store, with no space after the slashes\n"
	if code != 0 || stdout != "wrote warn_ephemeral.go\n" || stderr != want {
		t.Fatalf("got %d %q %q, want 0, the file written and %q", code, stdout, stderr, want)
	}
}

// TestWarningTestFile checks that a directive in a _test.go file, which ephemeralgen does not
// read, gets a warning, also in a package whose other files have none; a directive inside a
// string of a test file is no directive.
func TestWarningTestFile(t *testing.T) {
	_, dir := tempPackage(t, "warntest")
	writeTree(t, dir, map[string]string{
		"warntest.go":      "package warntest\n",
		"warntest_test.go": "package warntest\n\n//ephemeral:store id=a ttl=1s\ntype A struct{}\n\nconst src = `\n//ephemeral:store id=b ttl=1s\n`\n",
	})
	code, stdout, stderr := runIn(t, dir, "-v")
	want := "warntest_test.go:3:1: warning: //ephemeral:store in a _test.go file is ignored: ephemeralgen reads only the files that a build of the package compiles; declare the type in a file whose name does not end in _test.go\n"
	if code != 0 || stdout != "" || stderr != want {
		t.Fatalf("got %d %q %q, want 0, nothing written and %q", code, stdout, stderr, want)
	}
}

// TestNoPackages: patterns that match no package (a mistyped directory in CI's -check) are an
// error, not a check that passes for finding nothing.
func TestNoPackages(t *testing.T) {
	_, dir := tempPackage(t, "nopkg")
	writeTree(t, dir, map[string]string{"empty/README": "no Go here\n"})
	for _, args := range [][]string{{"-check", "./empty/..."}, {"./empty/..."}} {
		code, stdout, stderr := runIn(t, dir, args...)
		if want := "ephemeralgen: ./empty/... matched no packages\n"; code != 1 || stdout != "" || stderr != want {
			t.Errorf("%v: %d %q %q, want 1 and %q", args, code, stdout, stderr, want)
		}
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-nope"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage: ephemeralgen") {
		t.Fatalf("bad flag: %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"-h"}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "usage: ephemeralgen") {
		t.Fatalf("-h: %d %q, want 0 and the usage", code, errOut.String())
	}
}

// TestCheckNoGoGenerate: -check of a package whose directive no //go:generate line follows
// says so, since go generate would not write its file.
func TestCheckNoGoGenerate(t *testing.T) {
	_, dir := tempPackage(t, "nogen")
	writeTree(t, dir, map[string]string{"presence.go": strings.Replace(checkSource, "//go:generate go tool ephemeralgen\n", "", 1)})
	code, stdout, stderr := runIn(t, dir, "-check")
	want := "missing: presence_ephemeral.go (no //go:generate line in its package runs ephemeralgen, so go generate does not write it unless a line in another package runs ephemeralgen for this one: add //go:generate go tool ephemeralgen to the file of the directive, then run go generate ./...)\n"
	if code != 1 || stdout != want || stderr != "" {
		t.Fatalf("-check: %d %q %q, want 1 and %q", code, stdout, stderr, want)
	}
	// A tab after //go:generate is a go:generate line all the same.
	writeTree(t, dir, map[string]string{"presence.go": strings.Replace(checkSource, "//go:generate go tool", "//go:generate\tgo tool", 1)})
	code, stdout, stderr = runIn(t, dir, "-check")
	if want := "missing: presence_ephemeral.go (run go generate ./...)\n"; code != 1 || stdout != want || stderr != "" {
		t.Fatalf("-check with a tab after //go:generate: %d %q %q, want 1 and %q", code, stdout, stderr, want)
	}
}

// TestBuildTags checks -tags and that an output file repeats its source file's //go:build line.
func TestBuildTags(t *testing.T) {
	mod, dir := tempPackage(t, "tagged")
	writeTree(t, dir, map[string]string{
		"doc.go":    "// Package tagged has a store in a file built with -tags special only.\npackage tagged\n",
		"tagged.go": "//go:build special\n\npackage tagged\n\n//ephemeral:store id=t ttl=1s\ntype T struct{ X string }\n",
	})
	out := filepath.Join(dir, "tagged_ephemeral.go")
	if code, stdout, stderr := runIn(t, dir); code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("without tags: %d %q %q", code, stdout, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("without tags, %s was written: %v", out, err)
	}
	if code, stdout, stderr := runIn(t, dir, "-tags", "special", "-v"); code != 0 || stdout != "wrote tagged_ephemeral.go\n" {
		t.Fatalf("with tags: %d %q %q", code, stdout, stderr)
	}
	src, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(src), "// Code generated by ephemeralgen. DO NOT EDIT.\n//go:build special\n\npackage tagged\n") {
		t.Fatalf("output does not start with the header and the build constraint:\n%s", src)
	}
	goCmd(t, mod, "vet", "./tagged")
	goCmd(t, mod, "vet", "-tags", "special", "./tagged")
	if code, stdout, _ := runIn(t, dir, "-check", "-tags", "special"); code != 0 || stdout != "" {
		t.Fatalf("-check with tags: %d %q", code, stdout)
	}
}
