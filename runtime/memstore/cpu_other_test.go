//go:build !unix

package memstore_test

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
