//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"syscall/js"
	"time"

	"github.com/ephemeral-go/ephemeral"
	"github.com/ephemeral-go/ephemeral/runtime/memstore"
)

var document = js.Global().Get("document")

// byID returns the page's element with the id.
func byID(id string) js.Value { return document.Call("getElementById", id) }

func main() {
	m, err := start()
	if err != nil {
		byID("status").Set("textContent", "Error: "+err.Error())
		return
	}
	// The program lives as long as the page (the mirror is never closed): its event handlers
	// run Go code.
	for c := range m.Changes() {
		render(m)
		logChange(c)
	}
	byID("status").Set("textContent", fmt.Sprintf("Error: the mirror stopped: %v", m.Err()))
}

// start starts the store and a mirror of it, connects the page's form and buttons to the store,
// and returns the mirror.
func start() (*ephemeral.Mirror[TodoKey, Todo], error) {
	var opts []ephemeral.StoreOption
	query, err := url.ParseQuery(strings.TrimPrefix(js.Global().Get("location").Get("search").String(), "?"))
	if err != nil {
		return nil, err
	}
	if s := query.Get("ttl"); s != "" {
		ttl, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("ttl=%s: %w", s, err)
		}
		opts = append(opts, ephemeral.WithDefaultTTL(ttl))
	}
	// The backend lives as long as the page; there is nothing to close it for.
	store, err := NewTodoStore(memstore.New(), opts...)
	if err != nil {
		return nil, err
	}
	m, err := store.Mirror(nil, ephemeral.WithChangeChan(0))
	if err != nil {
		return nil, err
	}

	// Event handlers must not block: they start a goroutine for each call of the store.
	input := byID("text")
	byID("add").Call("addEventListener", "submit", js.FuncOf(func(_ js.Value, args []js.Value) any {
		args[0].Call("preventDefault")
		todo := Todo{Text: input.Get("value").String()}
		input.Set("value", "")
		go call(func(ctx context.Context) error {
			_, err := store.Put(ctx, todo)
			return err
		})
		return nil
	}))
	byID("entries").Call("addEventListener", "click", js.FuncOf(func(_ js.Value, args []js.Value) any {
		button := args[0].Get("target").Call("closest", "button[data-action]")
		if button.IsNull() {
			return nil
		}
		key := TodoKey{Text: button.Call("closest", "li").Get("dataset").Get("key").String()}
		switch button.Get("dataset").Get("action").String() {
		case "keep":
			go call(func(ctx context.Context) error {
				_, err := store.Touch(ctx, key)
				return err
			})
		case "done":
			go call(func(ctx context.Context) error {
				_, err := store.Remove(ctx, key, ephemeral.WithReason("done"))
				return err
			})
		}
		return nil
	}))
	byID("fields").Set("disabled", false)
	byID("status").Set("textContent", fmt.Sprintf("Entries live %v unless kept.", store.DefaultTTL()))
	return m, nil
}

// call runs one call of the store and shows its error, if any.
func call(fn func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg := ""
	if err := fn(ctx); err != nil {
		msg = err.Error()
	}
	byID("error").Set("textContent", msg)
}

// render replaces the list with the entries of m. Each entry's bar drains until it expires.
func render(m *ephemeral.Mirror[TodoKey, Todo]) {
	list := byID("entries")
	list.Set("textContent", "")
	now := time.Now()
	for key, e := range m.All() {
		li := element("li", "")
		li.Get("dataset").Set("key", key.Text)
		li.Call("append", element("span", e.Value.Text))
		bar := element("span", "")
		bar.Set("className", "bar")
		bar.Set("title", "expires at "+e.ExpiresAt.Local().Format(time.TimeOnly))
		style := bar.Get("style")
		style.Set("animationDuration", fmt.Sprintf("%dms", e.ExpiresAt.Sub(e.UpdatedAt).Milliseconds()))
		style.Set("animationDelay", fmt.Sprintf("%dms", -now.Sub(e.UpdatedAt).Milliseconds()))
		li.Call("append", bar, button("keep", "Keep"), button("done", "Done"))
		list.Call("append", li)
	}
}

// logChange adds a line for c at the top of the change log.
func logChange(c ephemeral.Change[TodoKey, Todo]) {
	text := fmt.Sprintf("%s v%d %s %q", time.Now().Format(time.TimeOnly), c.Version, c.Kind, c.Key.Text)
	if c.Kind == ephemeral.ChangeRemoved {
		text += " (" + c.Cause.String()
		if c.Reason != "" {
			text += ": " + c.Reason
		}
		text += ")"
	}
	li := element("li", text)
	data := li.Get("dataset")
	data.Set("key", c.Key.Text)
	data.Set("kind", c.Kind.String())
	data.Set("cause", c.Cause.String())
	byID("changes").Call("prepend", li)
}

// element returns a new element with the tag and text.
func element(tag, text string) js.Value {
	el := document.Call("createElement", tag)
	el.Set("textContent", text)
	return el
}

// button returns a new button with the action and label.
func button(action, label string) js.Value {
	b := element("button", label)
	b.Set("type", "button")
	b.Get("dataset").Set("action", action)
	return b
}
