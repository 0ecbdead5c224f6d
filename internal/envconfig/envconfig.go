// Package envconfig reads typed settings (integers, durations, booleans, browser origins, log
// levels) from an environment lookup function, collecting the first error. It reads nothing by
// itself: server.go, the one place that reads the environment, hands it os.Getenv.
package envconfig

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Reader reads typed settings from getenv, collecting the first error.
type Reader struct {
	getenv func(string) string
	err    error
}

// New returns a Reader over getenv (os.Getenv in main, a map in tests).
func New(getenv func(string) string) *Reader { return &Reader{getenv: getenv} }

// Err returns the first error met: the name of the variable and what was wrong with it.
func (e *Reader) Err() error { return e.err }

// Fail records an error about key (the first one is kept).
func (e *Reader) Fail(key, msg string) {
	if e.err == nil {
		e.err = fmt.Errorf("config: %s %s", key, msg)
	}
}

// String reads key, or def when it is unset or blank.
func (e *Reader) String(key, def string) string {
	if v := strings.TrimSpace(e.getenv(key)); v != "" {
		return v
	}
	return def
}

// Int reads a non-negative integer.
func (e *Reader) Int(key string, def int) int {
	v := e.String(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.Fail(key, "must be a non-negative integer")
	}
	return n
}

// Positive reads an integer that must be at least 1.
func (e *Reader) Positive(key string, def int) int {
	n := e.Int(key, def)
	if n < 1 {
		e.Fail(key, "must be at least 1")
	}
	return n
}

// LogLevel reads debug, info, warn or error (default info).
func (e *Reader) LogLevel(key string) slog.Level {
	switch lvl := strings.ToLower(e.String(key, "info")); lvl {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	e.Fail(key, "must be debug, info, warn or error")
	return slog.LevelInfo
}

// Duration reads a duration such as 250us, 5s or 1m.
func (e *Reader) Duration(key string, def time.Duration) time.Duration {
	v := e.String(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.Fail(key, "must be a duration such as 250us, 5s or 1m")
	}
	return d
}

// Bool reads true or false.
func (e *Reader) Bool(key string, def bool) bool {
	v := e.String(key, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.Fail(key, "must be true or false")
	}
	return b
}

// Origins reads a comma-separated list of browser origins (scheme://host[:port]); "*" allows
// any origin and is accepted in development only.
func (e *Reader) Origins(key string, development bool) []string {
	var out []string
	for _, o := range strings.Split(e.String(key, ""), ",") {
		o = strings.TrimSuffix(strings.TrimSpace(o), "/")
		switch {
		case o == "":
			continue
		case o == "*":
			if !development {
				e.Fail(key, `may be "*" only with APP_ENV=development`)
			}
		default:
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
				e.Fail(key, "must list origins such as https://app.example.com, separated by commas")
			}
		}
		out = append(out, o)
	}
	return out
}
