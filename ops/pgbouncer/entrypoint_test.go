package pgbouncer

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDockerEntrypointRendersTheTemplate checks that docker-entrypoint.sh, which renders
// pgbouncer.ini for docker-compose.yml with sed, writes what render writes for the same values,
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
	want, err := render(dockerVars(filepath.Join(dir, "userlist.txt")))
	if err != nil {
		t.Fatal(err)
	}
	// render leaves comment lines alone; sed fills placeholders in everywhere. Compare the
	// settings.
	if diff := cmp.Diff(settings(want), settings(string(out))); diff != "" {
		t.Errorf("docker-entrypoint.sh renders other settings than render (-render +docker-entrypoint.sh):\n%s", diff)
	}
	users, err := os.ReadFile(filepath.Join(dir, "userlist.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(users) != "\"threadline\" \"s3cret\"\n" {
		t.Errorf("userlist.txt = %q", users)
	}
}
