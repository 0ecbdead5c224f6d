// Package tick runs the periodic work of the server's background goroutines (the caches'
// invalidation retries, the local cache's tracking watchdog, the presence refresher, the live
// hub's poll of PostgreSQL): one loop
// that ends as soon as its owner closes stop, so that Close waits at most for the call of f in
// progress.
package tick

import "time"

// Every calls f every d until stop is closed; the first call comes d after Every starts. It
// returns once stop is closed and no call of f is running.
func Every(stop <-chan struct{}, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		f()
	}
}
