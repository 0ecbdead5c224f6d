// Package k8s holds the Kubernetes manifests of the server (a kustomize base) and their tests.
//
// kubectl's validation and kubeconform need an API server or schemas fetched from the network,
// which the tests do not have. Instead each document is decoded strictly into its type from
// k8s.io/api: an unknown or misspelt field, a value of the wrong type, or a quantity that does
// not parse fails. What that does not catch — required fields, value ranges, cross-field rules
// the API server enforces — is partly made up by the checks of our own below, which hold the
// manifests to the server: every variable set is one the server reads (README's configuration
// table), the configuration is accepted by the real binary, the probes answer on the ports they
// name, and the shutdown timing covers the server's.
package k8s

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }

const readme = "../../README.md"

// manifests is every object of the base, decoded into its type.
type manifests struct {
	files      []string // the YAML files besides kustomization.yaml
	deployment *appsv1.Deployment
	service    *corev1.Service
	configMap  *corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	sa         *corev1.ServiceAccount
	pdb        *policyv1.PodDisruptionBudget
	hpa        *autoscalingv2.HorizontalPodAutoscaler
	netpol     *networkingv1.NetworkPolicy
	job        *batchv1.Job
}

// splitDocuments splits a YAML stream at its "---" lines, dropping documents that hold only
// comments.
func splitDocuments(raw []byte) [][]byte {
	var docs [][]byte
	for doc := range bytes.SplitSeq(append([]byte("\n"), raw...), []byte("\n---")) {
		meaningful := false
		for line := range bytes.SplitSeq(doc, []byte("\n")) {
			if l := bytes.TrimSpace(line); len(l) > 0 && l[0] != '#' {
				meaningful = true
			}
		}
		if meaningful {
			docs = append(docs, doc)
		}
	}
	return docs
}

// decodeStrict decodes one document into v, failing on unknown fields and duplicate keys.
func decodeStrict(doc []byte, v any) error { return yaml.UnmarshalStrict(doc, v) }

// keep returns a function that sets *p to a new T and returns it.
func keep[T any](p **T) func() any {
	return func() any {
		*p = new(T)
		return *p
	}
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{secrets: map[string]*corev1.Secret{}}
	// Each kind of the base, by apiVersion and kind: a new object of its type to decode into,
	// kept in m (a Secret by its name, below, as there are several).
	kinds := map[string]func() any{
		"apps/v1 Deployment":                     keep(&m.deployment),
		"v1 Service":                             keep(&m.service),
		"v1 ConfigMap":                           keep(&m.configMap),
		"v1 Secret":                              func() any { return &corev1.Secret{} },
		"v1 ServiceAccount":                      keep(&m.sa),
		"policy/v1 PodDisruptionBudget":          keep(&m.pdb),
		"autoscaling/v2 HorizontalPodAutoscaler": keep(&m.hpa),
		"networking.k8s.io/v1 NetworkPolicy":     keep(&m.netpol),
		"batch/v1 Job":                           keep(&m.job),
	}
	for _, path := range paths {
		if path == "kustomization.yaml" {
			continue
		}
		m.files = append(m.files, path)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocuments(raw) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s, document %d: %v", path, i+1, err)
			}
			newObj, ok := kinds[tm.APIVersion+" "+tm.Kind]
			if !ok {
				t.Fatalf("%s, document %d: unexpected %s %s", path, i+1, tm.APIVersion, tm.Kind)
			}
			obj := newObj()
			if err := decodeStrict(doc, obj); err != nil {
				t.Fatalf("%s, document %d (%s): %v", path, i+1, tm.Kind, err)
			}
			if s, ok := obj.(*corev1.Secret); ok {
				m.secrets[s.Name] = s
			}
		}
	}
	for name, v := range map[string]bool{
		"Deployment": m.deployment != nil, "Service": m.service != nil, "ConfigMap": m.configMap != nil,
		"ServiceAccount": m.sa != nil, "PodDisruptionBudget": m.pdb != nil,
		"HorizontalPodAutoscaler": m.hpa != nil, "NetworkPolicy": m.netpol != nil, "Job": m.job != nil,
	} {
		if !v {
			t.Fatalf("no %s among %v", name, m.files)
		}
	}
	return m
}

// TestStrictDecodingCatchesMistakes shows what the strict decoding refuses, so that the other
// tests' decoding is known to be strict.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		into      any
	}{
		{"misspelt field", "apiVersion: v1\nkind: Service\nspec: {sesionAffinity: None}\n", &corev1.Service{}},
		{"field at the wrong level", "apiVersion: v1\nkind: Service\nspec: {name: x}\n", &corev1.Service{}},
		{"wrong type", "apiVersion: v1\nkind: Service\nspec: {ports: 80}\n", &corev1.Service{}},
		{"duplicate key", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nmetadata: {name: y}\n", &corev1.Service{}},
		{"bad quantity", "apiVersion: apps/v1\nkind: Deployment\nspec: {template: {spec: {containers: [{name: c, resources: {limits: {memory: 1Gigabyte}}}]}}}\n", &appsv1.Deployment{}},
		{"probe handler misspelt", "apiVersion: apps/v1\nkind: Deployment\nspec: {template: {spec: {containers: [{name: c, readinessProbe: {httpGets: {path: /readyz}}}]}}}\n", &appsv1.Deployment{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := decodeStrict([]byte(tc.doc), tc.into); err == nil {
				t.Errorf("decoded without error: %s", tc.doc)
			}
		})
	}
}

// TestKustomizationListsEveryManifest: kubectl apply -k applies exactly the files here.
func TestKustomizationListsEveryManifest(t *testing.T) {
	m := loadManifests(t)
	raw, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Labels     []struct {
			Pairs            map[string]string `json:"pairs"`
			IncludeSelectors bool              `json:"includeSelectors"`
		} `json:"labels"`
		Resources []string `json:"resources"`
	}
	if err := decodeStrict(raw, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: kind %q", k.Kind)
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if diff := cmp.Diff(m.files, got); diff != "" {
		t.Errorf("kustomization.yaml resources (-files here +listed):\n%s", diff)
	}
}

// serverContainer is the Deployment's one container.
func (m *manifests) serverContainer(t *testing.T) corev1.Container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(cs))
	}
	return cs[0]
}

// env returns the variables a container gets: its env entries and the keys of the ConfigMaps
// and Secrets of its envFrom.
func (m *manifests) env(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			if from.ConfigMapRef.Name != m.configMap.Name {
				t.Errorf("container %s: envFrom names ConfigMap %q, not in the base", c.Name, from.ConfigMapRef.Name)
			}
			for k, v := range m.configMap.Data {
				env[k] = v
			}
		case from.SecretRef != nil:
			s := m.secrets[from.SecretRef.Name]
			if s == nil {
				t.Errorf("container %s: envFrom names Secret %q, not in the base", c.Name, from.SecretRef.Name)
				continue
			}
			for k, v := range s.StringData {
				env[k] = v
			}
			for k, v := range s.Data {
				env[k] = string(v)
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// configVariables returns the variables of README's configuration table: the ones the server
// reads (server_test.go holds the table, .env.example and the server to each other).
func configVariables(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Configuration\n")
	if !ok {
		t.Fatalf("%s has no Configuration section", readme)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	vars := map[string]bool{}
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			vars[m[1]] = true
		}
	}
	if len(vars) < 40 {
		t.Fatalf("found only %d variables in %s's configuration table", len(vars), readme)
	}
	return vars
}

// TestEnvironmentIsWhatTheServerReads: every variable the pods get is one the server reads, and
// production's necessities are there; the migration's direct URL reaches the Job only.
func TestEnvironmentIsWhatTheServerReads(t *testing.T) {
	m := loadManifests(t)
	known := configVariables(t)
	server := m.env(t, m.serverContainer(t))
	job := m.env(t, m.job.Spec.Template.Spec.Containers[0])
	for _, c := range []struct {
		name string
		env  map[string]string
	}{{"Deployment", server}, {"migrate Job", job}} {
		for k := range c.env {
			if !known[k] {
				t.Errorf("%s sets %s, which the server does not read (not in README's configuration table)", c.name, k)
			}
		}
	}
	for _, k := range []string{"APP_ENV", "ADDR", "OPS_ADDR", "DATABASE_URL", "REDIS_URL", "JWT_SECRET"} {
		if _, ok := server[k]; !ok {
			t.Errorf("the Deployment does not set %s", k)
		}
	}
	if server["APP_ENV"] != "production" || job["APP_ENV"] != "production" {
		t.Errorf("APP_ENV: Deployment %q, Job %q; want production", server["APP_ENV"], job["APP_ENV"])
	}
	if host, _, err := net.SplitHostPort(server["OPS_ADDR"]); err != nil || host == "127.0.0.1" || host == "localhost" {
		t.Errorf("OPS_ADDR %q: Prometheus in another pod cannot reach a loopback listener", server["OPS_ADDR"])
	}
	if _, ok := server["DATABASE_DIRECT_URL"]; ok {
		t.Error("the serving pods get DATABASE_DIRECT_URL: only the migration Job needs it")
	}
	if _, ok := job["DATABASE_DIRECT_URL"]; !ok {
		t.Error("the migration Job does not get DATABASE_DIRECT_URL")
	}
}

// setting returns a duration the server reads from the pods' environment, or its default.
func setting(t *testing.T, env map[string]string, key string, def time.Duration) time.Duration {
	t.Helper()
	v, ok := env[key]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, v, err)
	}
	return d
}

// TestShutdownTiming: the preStop sleep equals the drain delay (both wait for the routing tier
// to notice the pod is leaving), SHUTDOWN_TIMEOUT leaves a request that began at the drain's
// last moment its whole REQUEST_TIMEOUT, and the grace period covers the sleep and the whole
// graceful shutdown, so the kubelet's SIGKILL never cuts it short.
func TestShutdownTiming(t *testing.T) {
	m := loadManifests(t)
	c := m.serverContainer(t)
	env := m.env(t, c)
	def := app.Defaults()
	drain := setting(t, env, "SHUTDOWN_DRAIN_DELAY", def.ShutdownDrainDelay)
	timeout := setting(t, env, "SHUTDOWN_TIMEOUT", def.ShutdownTimeout)
	request := setting(t, env, "REQUEST_TIMEOUT", def.RequestTimeout)
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("the container has no preStop sleep")
	}
	sleep := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if sleep != drain {
		t.Errorf("preStop sleeps %s, SHUTDOWN_DRAIN_DELAY is %s: want them equal", sleep, drain)
	}
	if sleep == 0 {
		t.Error("preStop sleeps 0 s: endpoints take seconds to leave kube-proxy and the ingress")
	}
	if drain >= timeout {
		t.Errorf("SHUTDOWN_DRAIN_DELAY %s must be shorter than SHUTDOWN_TIMEOUT %s", drain, timeout)
	}
	if drain+request > timeout {
		t.Errorf("SHUTDOWN_TIMEOUT %s < SHUTDOWN_DRAIN_DELAY %s + REQUEST_TIMEOUT %s: a request begun at the end of the drain is cut short", timeout, drain, request)
	}
	grace := m.deployment.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("no terminationGracePeriodSeconds (the default, 30 s, is not derived from anything)")
	}
	if need := sleep + timeout; time.Duration(*grace)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds %d <= preStop %s + SHUTDOWN_TIMEOUT %s (drain %s included)", *grace, sleep, timeout, drain)
	}
}

// TestPodIsLockedDown: non-root, read-only root filesystem, no privilege escalation, no
// capabilities, no service-account token; memory bounded, with GOMEMLIMIT below the limit.
func TestPodIsLockedDown(t *testing.T) {
	m := loadManifests(t)
	for _, pod := range []struct {
		name string
		spec corev1.PodSpec
	}{{"Deployment", m.deployment.Spec.Template.Spec}, {"migrate Job", m.job.Spec.Template.Spec}} {
		t.Run(pod.name, func(t *testing.T) {
			ps := pod.spec.SecurityContext
			if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
				t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", ps)
			}
			if pod.spec.AutomountServiceAccountToken == nil || *pod.spec.AutomountServiceAccountToken {
				t.Error("the pod mounts a service-account token; the server calls no Kubernetes API")
			}
			if len(pod.spec.Volumes) > 0 {
				t.Errorf("volumes %v: the server writes no file", pod.spec.Volumes)
			}
			for _, c := range pod.spec.Containers {
				sc := c.SecurityContext
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
					sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
					t.Errorf("container %s securityContext %+v: want a read-only root filesystem, no privilege escalation, capabilities dropped", c.Name, sc)
				}
				limit, ok := c.Resources.Limits[corev1.ResourceMemory]
				if !ok {
					t.Errorf("container %s has no memory limit", c.Name)
					continue
				}
				if req, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok || req.Cmp(limit) > 0 {
					t.Errorf("container %s: memory request %v, limit %v", c.Name, req.String(), limit.String())
				}
			}
		})
	}
	c := m.serverContainer(t)
	env := m.env(t, c)
	goMemLimit, ok := env["GOMEMLIMIT"]
	if !ok {
		t.Fatal("the server runs without GOMEMLIMIT: the collector does not know the container's limit")
	}
	soft, err := parseGoMemLimit(goMemLimit)
	if err != nil {
		t.Fatal(err)
	}
	limit := c.Resources.Limits[corev1.ResourceMemory]
	if soft >= limit.Value() || float64(soft) < 0.8*float64(limit.Value()) {
		t.Errorf("GOMEMLIMIT %s (%d bytes) should sit between 80%% and 100%% of the memory limit %s (%d bytes)", goMemLimit, soft, limit.String(), limit.Value())
	}
}

// TestObjectsReferToEachOther: selectors select the server's pods, named ports exist, the HPA
// scales the Deployment, the pods use the base's service account.
func TestObjectsReferToEachOther(t *testing.T) {
	m := loadManifests(t)
	d := m.deployment
	podLabels := labels.Set(d.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(podLabels) {
		t.Errorf("the Deployment's selector %v does not select its pod template's labels %v (%v)", d.Spec.Selector, podLabels, err)
	}
	jobLabels := labels.Set(m.job.Spec.Template.Labels)
	for name, s := range map[string]*metav1.LabelSelector{
		"PodDisruptionBudget": m.pdb.Spec.Selector, "NetworkPolicy": &m.netpol.Spec.PodSelector,
	} {
		sel, err := metav1.LabelSelectorAsSelector(s)
		if err != nil || !sel.Matches(podLabels) || sel.Matches(jobLabels) {
			t.Errorf("the %s's selector %v should select the server's pods %v and not the migration's %v (%v)", name, s, podLabels, jobLabels, err)
		}
	}
	if svc := labels.SelectorFromSet(m.service.Spec.Selector); !svc.Matches(podLabels) || svc.Matches(jobLabels) {
		t.Errorf("the Service's selector %v should select the server's pods %v and not the migration's", m.service.Spec.Selector, podLabels)
	}
	c := m.serverContainer(t)
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, p := range m.service.Spec.Ports {
		if _, ok := ports[p.TargetPort.String()]; !ok {
			t.Errorf("Service port %s targets %q, not a container port (%v)", p.Name, p.TargetPort.String(), ports)
		}
	}
	for _, rule := range m.netpol.Spec.Ingress {
		for _, p := range rule.Ports {
			if _, ok := ports[p.Port.String()]; !ok {
				t.Errorf("NetworkPolicy port %q is not a container port (%v)", p.Port.String(), ports)
			}
		}
	}
	if ref := m.hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("the HPA scales %+v, not the Deployment %s", ref, d.Name)
	}
	if m.hpa.Spec.MinReplicas == nil || *m.hpa.Spec.MinReplicas < 2 {
		t.Error("the HPA may scale to one pod: a disruption would leave none")
	}
	if len(m.hpa.Spec.Metrics) != 1 || m.hpa.Spec.Metrics[0].Resource == nil || m.hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("the HPA should scale on CPU alone: %+v", m.hpa.Spec.Metrics)
	}
	if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
		t.Error("no CPU request: the HPA's utilization is relative to it")
	}
	for _, spec := range []corev1.PodSpec{d.Spec.Template.Spec, m.job.Spec.Template.Spec} {
		if spec.ServiceAccountName != m.sa.Name {
			t.Errorf("a pod uses service account %q, not the base's %q", spec.ServiceAccountName, m.sa.Name)
		}
	}
	if m.service.Spec.SessionAffinity != corev1.ServiceAffinityNone {
		t.Errorf("Service sessionAffinity %q: any instance serves any client", m.service.Spec.SessionAffinity)
	}
}

// TestServerRunsWithTheManifests runs the real binary with the pods' environment — the
// ConfigMap and the Secret, the services replaced by the test's and the listeners by free
// ports — so the configuration is one the server accepts, and sends each probe to the listener
// its port stands for.
func TestServerRunsWithTheManifests(t *testing.T) {
	m := loadManifests(t)
	c := m.serverContainer(t)
	env := m.env(t, c)
	database := testenv.NewDatabase(t)
	env["DATABASE_URL"], env["REDIS_URL"] = database.PooledURL, testenv.NewRedis(t)
	env["JWT_SECRET"] = apptest.Secret

	// Each container port stands for the listener whose address has that port.
	listeners := map[int32]string{} // container port -> the variable of its listener
	for _, k := range []string{"ADDR", "OPS_ADDR"} {
		_, port, err := net.SplitHostPort(env[k])
		if err != nil {
			t.Fatalf("%s=%q: %v", k, env[k], err)
		}
		n, _ := strconv.Atoi(port)
		listeners[int32(n)] = k
		env[k] = apptest.FreeAddr(t)
	}
	byName := map[string]string{} // port name -> the test's address of its listener
	for _, p := range c.Ports {
		k, ok := listeners[p.ContainerPort]
		if !ok {
			t.Errorf("container port %s (%d) is no listener of the server (ADDR, OPS_ADDR)", p.Name, p.ContainerPort)
			continue
		}
		byName[p.Name] = env[k]
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v: want GET /readyz", p)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v: want GET /healthz (no dependency checked: an outage must not restart pods)", p)
	}
	if ann := m.deployment.Spec.Template.Annotations; ann["prometheus.io/port"] != strconv.Itoa(int(portOf(c, "ops"))) {
		t.Errorf("prometheus.io/port %q is not the ops port %d", ann["prometheus.io/port"], portOf(c, "ops"))
	}

	apptest.StartProcess(t, env)
	get := func(addr, path string) int {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		addr, ok := byName[p.HTTPGet.Port.String()]
		if !ok {
			t.Errorf("%s probe: port %q is not a container port", name, p.HTTPGet.Port.String())
			continue
		}
		if status := get(addr, p.HTTPGet.Path); status != http.StatusOK {
			t.Errorf("%s probe: GET %s on port %s answered %d", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), status)
		}
	}
	if status := get(byName["ops"], m.deployment.Spec.Template.Annotations["prometheus.io/path"]); status != http.StatusOK {
		t.Errorf("GET %s on the ops port answered %d", m.deployment.Spec.Template.Annotations["prometheus.io/path"], status)
	}
}

// parseGoMemLimit reads GOMEMLIMIT as the Go runtime does: a number of bytes with an optional
// unit B, KiB, MiB, GiB or TiB.
func parseGoMemLimit(v string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			x, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("GOMEMLIMIT=%q: %v", v, err)
			}
			return x << u.shift, nil
		}
	}
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("GOMEMLIMIT=%q: %v", v, err)
	}
	return x, nil
}

func portOf(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	panic(fmt.Sprintf("no port %s", name))
}
