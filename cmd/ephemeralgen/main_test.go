package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if tempModuleDir != "" {
			os.RemoveAll(tempModuleDir)
		}
		os.Exit(code)
	}))
}
