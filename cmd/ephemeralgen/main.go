// Command ephemeralgen generates typed, TTL-scoped stores for annotated Go structs: a
// reflection-free JSON codec, key builders, and a store type, an alias of the generic
// ephemeral.Store of package github.com/ephemeral-go/ephemeral.
//
// Declare it as a tool of your module (go get -tool
// github.com/ephemeral-go/ephemeral/cmd/ephemeralgen) and run it with go generate, from a line
// in any file of the package:
//
//	//go:generate go tool ephemeralgen
//
// Usage:
//
//	ephemeralgen [-check] [-tags tags] [-v] [packages]
//
// The arguments are package patterns, as for go build; the default is ".". Every Go file of
// those packages that declares stores gets an output file beside it: presence.go →
// presence_ephemeral.go. Files are written only when their content changes, and generated files
// whose directives are gone are deleted. With -check nothing is written: ephemeralgen compares
// the files it would write with those on disk, prints a unified diff for each stale file and
// names each missing or orphaned one, and exits with status 1 if there is any (for CI:
// ephemeralgen -check ./...); problems in some packages do not keep it from checking the
// others. Patterns that match no package at all are an error (go build only warns), so that a
// mistyped directory does not pass a check. The exit status is 0 on success, 1 when a problem
// is found or a file is stale, and 2 for bad usage.
//
// # The directive
//
// A store is declared by a line in the doc comment of a struct type:
//
//	// Presence is one user's presence in a room.
//	//
//	//ephemeral:store id=presence ttl=30s key=Room,UserID
//	type Presence struct {
//		Room   string    `json:"room"`
//		UserID string    `json:"userId"`
//		Status string    `json:"status"`
//		Since  time.Time `json:"since"`
//	}
//
// The line starts exactly with //ephemeral:store (no space after the slashes) and continues
// with space-separated options:
//
//	id=<id>              the store id, 1 to 256 bytes; required
//	ttl=<duration>       the default time-to-live, a positive Go duration (30s, 5m); required
//	key=<Field>,...      the key fields, in key order (default: keys are plain strings)
//	tenant=<tenant>      the default tenant, 1 to 256 bytes (default "default")
//	maxEntries=<n>       live entries per tenant (default 10,000)
//	maxPayload=<n>       encoded value size in bytes (default 4,096)
//	retention=<duration> how long events are kept (default 5m)
//	maxEvents=<n>        events kept per tenant (default 50,000)
//	name=<Name>          the prefix of the generated names (default: the type's name)
//
// Key fields are direct fields of the struct, exported and encoded (not tagged json:"-", and
// with a JSON name no other field takes from them), whose types are strings or integers, or
// named types of them.
//
// The id names the store's state on the backend: all stores of one id on a backend (or on one
// Redis, under one key prefix) share their entries and events, whatever their types, so give
// each stored type an id of its own. ephemeralgen refuses two stores of one id in a package;
// across packages, it cannot tell.
//
// Problems are reported like a compiler's, all at once, as file:line:col: message, and nothing
// is written: unknown or repeated options, bad values, key fields that do not exist, are
// promoted from an embedded struct, are not encoded or have unsupported types, unsupported
// field types, fields promoted through an embedded pointer to an unexported struct type (which
// encoding/json writes but cannot read back: a value with it set would be stored and never
// read), fields of a type that ephemeralgen generates (a store's key), non-struct or
// generic types, types that hold a lock (the store copies values, which go vet rejects for a
// sync.Mutex or an atomic.Int64), and two stores of one package with the same id or the same
// generated names. A comment that looks like a directive but is not one, such as
// "// ephemeral:store ..." with a space, gets a warning, printed as file:line:col: warning:
// message, which does not stop generation; so does a directive in a _test.go file, which
// ephemeralgen does not read (it reads the files a build compiles). The package's type errors
// are those it has with the generated files, which are type-checked with it before anything is
// written: code that uses what ephemeralgen generates (a struct that embeds a store, a value
// type that implements an interface by its EphemeralKey method) is fine before the first run,
// and a package that would not compile is left as it is. What another package generates is read
// from that package as it is on disk: a package that uses the store of a package it imports,
// generated neither, needs that one generated first (run ephemeralgen on it alone, or run go
// generate twice).
//
// # Field types and struct tags
//
// The codec encodes the exported fields of the struct, and of the structs it contains, as
// encoding/json does. The field types it supports are: bool, the integer and floating-point
// types, string, and named types of these; []byte (and named types of it); time.Time and
// time.Duration; pointers, slices and arrays of supported types; maps of them with string,
// integer or encoding.TextMarshaler keys (as encoding/json does, a key of string kind is
// written as the string, and another by its MarshalText method if it has one, an integer key
// too; a key is read by UnmarshalText if its pointer has it, whatever its kind, or by
// UnmarshalJSON, with the key as quoted in the document, if it has that too); structs of any
// package (embedded ones too, also by pointer), and instances of generic structs; and types
// that implement json.Marshaler and json.Unmarshaler, or encoding.TextMarshaler and
// encoding.TextUnmarshaler, whose methods are called directly. Other types, such as interfaces,
// channels, functions, complex numbers, json.Number, named pointer types and slices of named
// byte types, are reported, naming the field; tag such a field json:"-" to leave it out (and
// hold a value of any JSON shape, where an interface would, as a json.RawMessage).
//
// The json struct tag is read as encoding/json reads it: the member name, the omitempty and
// omitzero options, "-" to leave a field out, and the string option on bool, numeric and
// string fields. omitzero calls the type's IsZero method (on the value, or on its address),
// else compares the value with its zero value (==, which is what reflect.Value.IsZero does on
// a comparable type) or a slice or map with nil; on a type that is not comparable and has no
// IsZero method it is reported.
//
// # What is generated
//
// For the directive above, with Name the type's name or the name= option, presence.go gets
// presence_ephemeral.go with:
//
//   - PresenceKey, a struct of the key fields, with String, and ParsePresenceKey, its inverse.
//     The string form escapes each field ("%" as "%25", ":" as "%3A") and joins them with ":",
//     so keys stay readable ("room-1:alice") and distinct keys stay distinct. An integer field
//     is written in decimal ("-3", "10"); snapshots sort by the string form, in which "10"
//     comes before "9".
//   - Prefix builders for the leading key fields: PresenceKeyPrefix(room) for the first field,
//     and with three or more key fields PresenceKeyPrefix2(first, second) and so on, up to all
//     fields but the last. A prefix matches exactly the keys whose leading fields are equal to
//     its arguments; pass it to ephemeral.WithPrefix.
//   - The method (Presence) EphemeralKey() PresenceKey.
//   - PresenceStore, an alias of ephemeral.Store[PresenceKey, Presence], and
//     NewPresenceStore(b, opts...), which returns the store on backend b with the directive's
//     settings as defaults (opts override them).
//   - PresenceCodec: Encode and Decode of Presence as JSON, byte-identical to encoding/json,
//     without reflection; the store's ephemeral.Codec[Presence]. And Clone(dst, src *Presence),
//     a deep copy that costs much less than a decode: *dst is then equal to *src (it encodes
//     alike), and no slice, map or pointer of either shares memory with the other. Slices, maps
//     and pointed-to values are copied, element by element (nil stays nil and empty stays
//     empty); strings and the locations of time.Time values, which are immutable, are shared;
//     a struct that holds no slice, map or pointer is copied by one assignment. Fields that the
//     codec does not encode (tagged json:"-", or unexported) are copied by assignment, as are
//     values of types with their own JSON or text methods that hold no reference. Those that do,
//     such as json.RawMessage and net.IP, are copied by a round trip through these methods
//     (MarshalJSON then UnmarshalJSON, or the text ones), at its cost; should it fail, which it
//     cannot for a value the codec decoded, they are copied by assignment. Clone does not look
//     for cycles: a value of a recursive type that holds itself (through a pointer, slice or
//     map) makes it recurse until the goroutine's stack overflows, which ends the program, as
//     any recursive deep copy does. No decoded value holds a cycle, and Encode rejects one (as
//     encoding/json does), so a store, which copies only values it decoded, never meets one;
//     looking for them would cost every copy of a recursive type, on the path of every read, a
//     record of the pointers and maps it copied. When the struct's only
//     references are slices of values copied by assignment (a []string, say), also
//     CloneFunc(), a Clone for a run of copies that carves their slices from blocks of about
//     4 KiB they share (see ephemeral.BatchCloner): a snapshot of 10,000 values with two
//     strings each made 97 allocations instead of 10,018.
//
// Everything else is a method of ephemeral.Store, typed by its parameters: Put(ctx, v) stores v
// at v.EphemeralKey(), and Upsert, Touch, TouchMany, Remove, Get, Snapshot, Reader and Mirror
// take and return PresenceKey keys and Presence values:
//
//	store, err := NewPresenceStore(backend)
//	if err != nil {
//		return err
//	}
//	if _, err := store.Put(ctx, Presence{Room: "lobby", UserID: "alice", Status: "here"}); err != nil {
//		return err
//	}
//	snap, err := store.Snapshot(ctx, ephemeral.WithPrefix(PresenceKeyPrefix("lobby")))
//
// A mirror is an in-process replica of one tenant (or of one key prefix in it) that stays
// current from the store's events, and calls a function with each change; see
// ephemeral.Store.Mirror:
//
//	m, err := store.Mirror(func(c ephemeral.Change[PresenceKey, Presence]) {
//		log.Printf("%s %s", c.Kind, c.Key.UserID)
//	}, ephemeral.WithTenant("room-1"))
//
// Without key= the key is a string: the store is an ephemeral.Store[string, T], and there is no
// key type, parser, prefix builder or EphemeralKey. When Name is unexported, so are the
// constructor, the parser and the codec (newPresenceStore, parsePresenceKey, presenceCodec).
// Output is deterministic and gofmt-formatted; package ephemeral is imported as ephemeral and
// runtime/jsonc as jsonc (or, if the package declares that name, as ephemeral2, jsonc2, ...).
// The parameters and local variables of the generated functions (v, e, d, name, s, k, ...) are
// renamed alike (v2, ...) where the package declares their name or an import of the file has
// it, so that they hide none of the package's types; and so are the unexported helpers that the
// codecs share (ephemeralEncodeItem, ephemeralDecodeItem, ephemeralCloneItem,
// ephemeralFieldsItem: ephemeralEncodeItem2, ...) where the package declares one of their
// names. Where the package declares a predeclared function that the codecs call (new, make,
// len, copy or clear), hiding it, they do without it (&T{}, a map literal, slices.Clone, a
// count of the elements, a loop). The predeclared identifiers that generated code cannot do
// without (nil, error, string, byte, the numeric types it converts to, len where omitempty
// tests a slice or map) are reported where the package declares them, to be renamed.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/diag"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/gen"
	"github.com/ephemeral-go/ephemeral/cmd/ephemeralgen/internal/load"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command with its arguments and output streams; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("ephemeralgen", flag.ContinueOnError)
	fl.SetOutput(stderr)
	check := fl.Bool("check", false, "write nothing; report stale, missing and orphaned files and exit 1 if there are any")
	tags := fl.String("tags", "", "comma-separated build tags, as for go build")
	verbose := fl.Bool("v", false, "name each file written or deleted")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: ephemeralgen [-check] [-tags tags] [-v] [packages]\n\n")
		fmt.Fprintf(stderr, "ephemeralgen generates typed stores for structs annotated with //ephemeral:store.\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		return 2
	}
	cwd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "ephemeralgen: %v\n", err)
		return 1
	}
	res, err := gen.Generate(load.Config{Patterns: fl.Args(), Tags: *tags})
	if err != nil {
		fmt.Fprintf(stderr, "ephemeralgen: %v\n", err)
		return 1
	}
	for _, d := range res.Diags {
		fmt.Fprintln(stderr, d.String(cwd))
	}
	failed := diag.HasErrors(res.Diags)
	rel := func(path string) string { return relPath(cwd, path) }
	if *check {
		if !checkFiles(res, stdout, rel) || failed {
			return 1
		}
		return 0
	}
	if failed {
		return 1
	}
	if err := writeFiles(res, stdout, rel, *verbose); err != nil {
		fmt.Fprintf(stderr, "ephemeralgen: %v\n", err)
		return 1
	}
	return 0
}

// checkFiles compares res with the disk and reports every difference; it reports whether there
// was none.
func checkFiles(res *gen.Result, w io.Writer, rel func(string) string) bool {
	fresh := true
	for _, f := range res.Files {
		old, err := os.ReadFile(f.Path)
		advice := "run go generate ./..."
		if f.NoGoGenerate {
			advice = "no //go:generate line in its package runs ephemeralgen, so go generate does not write it unless a line in another package runs ephemeralgen for this one: add //go:generate go tool ephemeralgen to the file of the directive, then run go generate ./..."
		}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(w, "missing: %s (%s)\n", rel(f.Path), advice)
			fresh = false
		case err != nil:
			fmt.Fprintf(w, "%v\n", err)
			fresh = false
		case !bytes.Equal(old, f.Content):
			name := rel(f.Path)
			fmt.Fprint(w, unifiedDiff(name+" (on disk)", name+" (generated)", string(old), string(f.Content)))
			fmt.Fprintf(w, "stale: %s (%s)\n", name, advice)
			fresh = false
		}
	}
	for _, path := range res.Orphans {
		fmt.Fprintf(w, "orphaned: %s (no directive left behind it; delete it or run go generate ./...)\n", rel(path))
		fresh = false
	}
	return fresh
}

// writeFiles writes the files of res whose content changed and deletes the orphans.
func writeFiles(res *gen.Result, w io.Writer, rel func(string) string, verbose bool) error {
	for _, f := range res.Files {
		if old, err := os.ReadFile(f.Path); err == nil && bytes.Equal(old, f.Content) {
			continue
		}
		if err := os.WriteFile(f.Path, f.Content, 0o666); err != nil {
			return err
		}
		if verbose {
			fmt.Fprintf(w, "wrote %s\n", rel(f.Path))
		}
	}
	for _, path := range res.Orphans {
		if err := os.Remove(path); err != nil {
			return err
		}
		if verbose {
			fmt.Fprintf(w, "deleted %s\n", rel(path))
		}
	}
	return nil
}

// relPath returns path relative to dir when it is inside dir, else path.
func relPath(dir, path string) string {
	if rel, err := filepath.Rel(dir, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}
