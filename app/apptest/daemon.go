package apptest

import (
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
	waitOK(t, readyURL, name, exited, 30*time.Second)
}
