package apptest

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// StartDaemon starts cmd, a server of another program (Prometheus, Alertmanager, an exporter),
// for the test, and returns once readyURL answers 200. The process is killed when the test
// ends (or when the test binary dies); its output, kept in memory, is logged when the test
// failed. The test fails if the process exits before it is ready, or after 30 s.
func StartDaemon(t testing.TB, cmd *exec.Cmd, readyURL string) {
	t.Helper()
	name := filepath.Base(cmd.Path)
	var logs Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(readyURL)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("%s answered %s", readyURL, res.Status)
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it was ready", name)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30 s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
