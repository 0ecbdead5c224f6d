package pgbouncer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerEntrypointRendersTheTemplate checks that docker-entrypoint.sh, which renders
// pgbouncer.ini for docker-compose.yml with sed, writes what Render writes for the same values,
// and a userlist with the password.
func TestDockerEntrypointRendersTheTemplate(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	cmd := exec.Command(sh, "docker-entrypoint.sh")
	cmd.Env = append(os.Environ(),
		"PG_HOST=postgres", "PG_PORT=5432", "LISTEN_PORT=6432",
		"PGBOUNCER_USER=threadline", "PGBOUNCER_PASSWORD=s3cret",
		"PGBOUNCER_TEMPLATE=pgbouncer.ini", "PGBOUNCER_DIR="+dir,
		"PGBOUNCER_BIN=cat", // print the rendered configuration instead of running PgBouncer
	)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-entrypoint.sh: %v\n%s", err, out)
	}
	want, err := Render(map[string]string{
		"LISTEN_ADDR": "0.0.0.0", "LISTEN_PORT": "6432", "PG_HOST": "postgres", "PG_PORT": "5432",
		"AUTH_FILE": filepath.Join(dir, "userlist.txt"), "ADMIN_USER": "threadline",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Render leaves comment lines alone; sed fills placeholders in everywhere. Compare the
	// settings.
	if got, want := settings(string(out)), settings(want); got != want {
		t.Errorf("docker-entrypoint.sh renders\n%s\nRender gives\n%s", got, want)
	}
	users, err := os.ReadFile(filepath.Join(dir, "userlist.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(users) != "\"threadline\" \"s3cret\"\n" {
		t.Errorf("userlist.txt = %q", users)
	}
}

func settings(ini string) string {
	var b strings.Builder
	for _, line := range strings.Split(ini, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, ";") && !strings.HasPrefix(t, "#") {
			b.WriteString(t + "\n")
		}
	}
	return b.String()
}
