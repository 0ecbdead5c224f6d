package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/threadline/threadline/internal/testenv"
)

// TestDockerCompose validates docker-compose.yml with `docker-compose config -q`, with and
// without the monitoring profile (no Docker engine needed), and checks what the file promises:
// healthchecks, a one-shot migration the app waits for, the monitoring services in their
// profile, ports on loopback only.
func TestDockerCompose(t *testing.T) {
	t.Parallel()
	testenv.SkipShort(t, "runs docker-compose")
	compose := testenv.LookPath(t, "docker-compose", "install it with `make ops-deps`")
	for _, args := range [][]string{
		{"-f", "docker-compose.yml", "config", "-q"},
		{"-f", "docker-compose.yml", "--profile", "monitoring", "config", "-q"},
	} {
		cmd := exec.Command(compose, args...)
		// Only the defaults of the file: no variable of the caller's environment.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file composeFile
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	core := []string{"postgres", "pgbouncer", "redis", "migrate", "app"}
	monitoring := []string{"prometheus", "grafana", "pgbouncer-exporter", "postgres-exporter", "redis-exporter", "node-exporter"}
	for _, name := range append(append([]string{}, core...), monitoring...) {
		svc, ok := file.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		inProfile := slices.Contains(svc.Profiles, "monitoring")
		if want := slices.Contains(monitoring, name); inProfile != want {
			t.Errorf("service %s: in the monitoring profile: %v, want %v", name, inProfile, want)
		}
		if name == "migrate" {
			if svc.Restart != "no" {
				t.Errorf("migrate is one-shot: restart %q, want \"no\"", svc.Restart)
			}
		} else if len(svc.Healthcheck["test"].([]any)) == 0 {
			t.Errorf("service %s has no healthcheck", name)
		}
		for _, p := range svc.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond loopback", name, p)
			}
		}
	}
	app := file.Services["app"]
	if app.Build == nil {
		t.Error("app is not built from the Dockerfile")
	}
	for dep, cond := range map[string]string{"migrate": "service_completed_successfully", "pgbouncer": "service_healthy", "redis": "service_healthy"} {
		if got := app.DependsOn[dep].Condition; got != cond {
			t.Errorf("app depends on %s with %q, want %q", dep, got, cond)
		}
	}

	// Grafana finds the provisioned dashboards where the compose file mounts them, and its
	// datasource points at the prometheus service.
	var provider struct {
		Providers []struct{ Options struct{ Path string } }
	}
	readYAML(t, "ops/grafana/provisioning/dashboards/threadline.yml", &provider)
	if len(provider.Providers) != 1 || !slices.Contains(file.Services["grafana"].Volumes, "./ops/grafana/dashboards:"+provider.Providers[0].Options.Path+":ro") {
		t.Errorf("grafana: the dashboard provider reads %+v, the compose file mounts %v", provider.Providers, file.Services["grafana"].Volumes)
	}
	var datasources struct {
		Datasources []struct{ Type, URL, UID string }
	}
	readYAML(t, "ops/grafana/provisioning/datasources/prometheus.yml", &datasources)
	if len(datasources.Datasources) != 1 || datasources.Datasources[0].URL != "http://prometheus:9090" || datasources.Datasources[0].Type != "prometheus" {
		t.Errorf("grafana datasources: %+v, want the prometheus service", datasources.Datasources)
	}
	if !slices.Contains(file.Services["prometheus"].Volumes, "./ops/prometheus:/etc/prometheus:ro") {
		t.Errorf("prometheus does not mount ops/prometheus: %v", file.Services["prometheus"].Volumes)
	}

	// The image: a static binary, run by a non-root user.
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" AS build", "CGO_ENABLED=0", "USER nonroot", "HEALTHCHECK"} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// composeFile is the part of docker-compose.yml the test reads.
type composeFile struct {
	Services map[string]struct {
		Build       any
		Profiles    []string
		Ports       []string
		Restart     string
		Healthcheck map[string]any
		Volumes     []string
		DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
	}
}
