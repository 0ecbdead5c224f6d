package document_test

import (
	"syscall"
	"time"
)

// rusageThread is RUSAGE_THREAD of getrusage(2) (Linux): the calling thread's usage.
const rusageThread = 1

// threadCPU returns the user and system CPU time of the calling OS thread; the caller locks its
// goroutine to the thread (runtime.LockOSThread) for the difference of two calls to be its own.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
