package devstack

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestNginx starts nginx in front of two HTTP servers, reloads it onto the second with a request
// open on the first (which completes), and stops it.
func TestNginx(t *testing.T) {
	needServers(t)
	ctx := testContext(t)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	backend := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				arrived <- struct{}{}
				<-release
			}
			fmt.Fprint(w, name)
		}))
		t.Cleanup(s.Close)
		return s
	}
	a, b := backend("a"), backend("b")
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the servers' Close, which waits for their handlers
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := stackDir(t)
	if err := os.Chmod(dir, 0o755); err != nil { // for the account nginx runs as
		t.Fatal(err)
	}
	cfg := NginxConfig{
		Dir: filepath.Join(dir, "nginx"), ErrorLog: filepath.Join(dir, "nginx-error.log"), Port: port,
	}
	to := func(s *httptest.Server) string {
		return fmt.Sprintf("server {\n    listen 127.0.0.1:%d;\n    location / {\n        proxy_pass %s;\n    }\n}\n", port, s.URL)
	}
	cfg.HTTP = to(a)
	n, err := cfg.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (string, error) {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		return string(body), err
	}
	if got, err := get("/"); err != nil || got != "a" {
		t.Fatalf("before the reload: %q, %v; want a", got, err)
	}

	type answer struct {
		body string
		err  error
	}
	slow := make(chan answer, 1)
	go func() {
		body, err := get("/slow")
		slow <- answer{body, err}
	}()
	<-arrived
	cfg.HTTP = to(b)
	if err := cfg.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := get("/"); err != nil || got != "b" {
		t.Fatalf("after the reload: %q, %v; want b", got, err)
	}
	unblock()
	if got := <-slow; got.err != nil || got.body != "a" {
		t.Errorf("the request open across the reload: %q, %v; want a", got.body, got.err)
	}

	if err := n.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := get("/"); err == nil {
		t.Error("nginx answers after Stop")
	}
	if err := StopNginx(cfg.Dir); err != nil {
		t.Errorf("StopNginx with nothing running: %v", err)
	}
	if b, _ := os.ReadFile(cfg.ErrorLog); strings.Contains(string(b), "[emerg]") {
		t.Errorf("error log:\n%s", b)
	}
}
