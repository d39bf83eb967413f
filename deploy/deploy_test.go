// Package deploy_test checks the deployment files users run (docker-compose,
// Kubernetes manifests, Prometheus alerts, the Grafana dashboard, the
// Dockerfile) by parsing them: Docker and Kubernetes are not needed.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/oppsync/oppsync/pkg/config"
)

// repoRoot is relative to this package's directory, where go test runs.
const repoRoot = ".."

// decodeAll parses every YAML document of a file into generic values.
func decodeAll(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

// get walks a generic YAML/JSON value by map keys and slice indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func yamlFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(repoRoot, "docker-compose.yml")}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestYAMLParses(t *testing.T) {
	files := yamlFiles(t)
	if len(files) < 10 {
		t.Fatalf("found only %d YAML files: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if docs := decodeAll(t, f); len(docs) == 0 {
				t.Errorf("%s holds no YAML document", f)
			}
		})
	}
}

// k8s returns the manifests under deploy/kubernetes by kind.
func k8s(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		for _, doc := range decodeAll(t, f) {
			kind, _ := doc["kind"].(string)
			if _, dup := out[kind]; dup {
				t.Fatalf("two %s manifests", kind)
			}
			out[kind] = doc
		}
	}
	return out
}

func TestKubernetesDeployment(t *testing.T) {
	m := k8s(t)
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "ServiceMonitor", "Kustomization"} {
		if m[kind] == nil {
			t.Errorf("no %s manifest", kind)
		}
	}
	d := m["Deployment"]
	if d == nil {
		t.FailNow()
	}
	if r := get(d, "spec", "replicas"); r != 2 {
		t.Errorf("replicas = %v, want 2", r)
	}
	c := get(d, "spec", "template", "spec", "containers", 0)
	port := get(c, "ports", 0)
	portNum, portName := get(port, "containerPort"), get(port, "name")
	if portNum != 8080 {
		t.Errorf("containerPort = %v, want 8080", portNum)
	}
	for _, p := range []struct{ probe, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
		t.Run(p.probe, func(t *testing.T) {
			hg := get(c, p.probe, "httpGet")
			if got := get(hg, "path"); got != p.path {
				t.Errorf("path = %v, want %s", got, p.path)
			}
			if got := get(hg, "port"); got != portNum && got != portName {
				t.Errorf("port = %v, want the container port %v (%v)", got, portNum, portName)
			}
		})
	}
	sc := get(c, "securityContext")
	if get(sc, "readOnlyRootFilesystem") != true || get(sc, "runAsNonRoot") != true || get(sc, "allowPrivilegeEscalation") != false {
		t.Errorf("container securityContext not locked down: %v", sc)
	}
	if get(d, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext lacks runAsNonRoot")
	}
	if get(c, "resources", "requests") == nil || get(c, "resources", "limits") == nil {
		t.Error("container has no resource requests/limits")
	}

	// Secrets arrive as env vars that must be config keys.
	env := map[string]bool{}
	envs, _ := get(c, "env").([]any)
	for _, e := range envs {
		name, _ := get(e, "name").(string)
		env[name] = true
		if get(e, "valueFrom", "secretKeyRef", "name") != get(m["Secret"], "metadata", "name") {
			t.Errorf("%s does not come from the Secret", name)
		}
		key, _ := get(e, "valueFrom", "secretKeyRef", "key").(string)
		if get(m["Secret"], "stringData", key) == nil {
			t.Errorf("%s refers to key %q missing from the Secret", name, key)
		}
	}
	for _, want := range []string{"OPPSYNC_KAFKA_SASL_PASSWORD", "OPPSYNC_REDIS_PASSWORD", "OPPSYNC_HTTP_AUTH_TOKEN"} {
		if !env[want] {
			t.Errorf("env %s missing", want)
		}
	}

	// The mounted ConfigMap is a valid config with these env vars set, and
	// the grace period outlasts its shutdown_timeout.
	cm := m["ConfigMap"]
	if get(d, "spec", "template", "spec", "volumes", 0, "configMap", "name") != get(cm, "metadata", "name") {
		t.Error("config volume does not mount the ConfigMap")
	}
	text, _ := get(cm, "data", "config.yml").(string)
	var environ []string
	for name := range env {
		environ = append(environ, name+"=placeholder")
	}
	cfg := loadConfig(t, text, environ)
	grace, _ := get(d, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
	if time.Duration(grace)*time.Second <= cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %d <= shutdown_timeout %s", grace, cfg.ShutdownTimeout)
	}
	if args := fmt.Sprint(get(c, "args")); !strings.Contains(args, "/etc/oppsync/config.yml") ||
		get(c, "volumeMounts", 0, "mountPath") != "/etc/oppsync" {
		t.Errorf("config not mounted where args read it: args %s", args)
	}

	if get(m["PodDisruptionBudget"], "spec", "maxUnavailable") != 1 {
		t.Error("PodDisruptionBudget maxUnavailable != 1")
	}
	if get(m["ServiceMonitor"], "apiVersion") != "monitoring.coreos.com/v1" ||
		get(m["ServiceMonitor"], "spec", "endpoints", 0, "path") != "/metrics" {
		t.Error("ServiceMonitor does not scrape /metrics")
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	k := decodeAll(t, filepath.Join("kubernetes", "kustomization.yaml"))[0]
	var listed []string
	for _, r := range k["resources"].([]any) {
		listed = append(listed, r.(string))
	}
	files, _ := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	sort.Strings(listed)
	if !slices.Equal(listed, want) {
		t.Errorf("kustomization resources %v, want %v", listed, want)
	}
}

func loadConfig(t *testing.T, text string, environ []string) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.LoadOptions{File: p, Environ: environ})
	if err != nil {
		t.Fatalf("config does not load: %v", err)
	}
	return cfg
}

func TestConfigFilesLoad(t *testing.T) {
	for _, f := range []string{filepath.Join("compose", "oppsync.yml"), filepath.Join("compose", "bridge.yml"), filepath.Join("docker", "config.yml")} {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			loadConfig(t, string(b), nil)
		})
	}
}

// knownMetrics is CONTRACT §7 plus the gauges and counters the deployment
// files rely on beyond it.
func knownMetrics() map[string]bool {
	m := map[string]bool{}
	for _, n := range []string{
		"events_consumed_total", "events_skipped_total", "decode_errors_total", "dead_letters_total",
		"triggers_emitted_total", "duplicates_total", "resync_notices_total", "kafka_consumer_lag",
		"schemas_cached", "pending_roles",
		"stale_records", "ready", "kafka_commits_total", "kafka_rebalances_total",
		"stream_length", "stream_group_lag", "stream_maxlen",
		"campaign_entries_total", "campaign_evaluations_total", "campaigns_active",
	} {
		m["oppsync_"+n] = true
	}
	for _, h := range []string{"apply_duration_seconds", "end_to_end_lag_seconds", "campaign_lag_seconds"} {
		for _, s := range []string{"", "_bucket", "_sum", "_count"} {
			m["oppsync_"+h+s] = true
		}
	}
	return m
}

func TestMetricNames(t *testing.T) {
	known := knownMetrics()
	re := regexp.MustCompile(`oppsync_[a-z_]+`)
	for _, f := range []string{filepath.Join("prometheus", "alerts.yml"), filepath.Join("grafana", "oppsync-dashboard.json")} {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			names := re.FindAllString(string(b), -1)
			if len(names) == 0 {
				t.Fatal("references no metric")
			}
			for _, n := range names {
				if !known[n] {
					t.Errorf("unknown metric %s", n)
				}
			}
		})
	}
}

func TestAlerts(t *testing.T) {
	doc := decodeAll(t, filepath.Join("prometheus", "alerts.yml"))[0]
	seen := map[string]bool{}
	groups, _ := doc["groups"].([]any)
	for _, g := range groups {
		rules, _ := get(g, "rules").([]any)
		for _, r := range rules {
			name, _ := get(r, "alert").(string)
			seen[name] = true
			t.Run(name, func(t *testing.T) {
				if s, _ := get(r, "expr").(string); strings.TrimSpace(s) == "" {
					t.Error("no expr")
				}
				for _, a := range []string{"summary", "description"} {
					if s, _ := get(r, "annotations", a).(string); strings.TrimSpace(s) == "" {
						t.Errorf("no %s annotation", a)
					}
				}
				if get(r, "labels", "severity") == nil {
					t.Error("no severity label")
				}
			})
		}
	}
	// One alert per failure mode the README documents.
	for _, want := range []string{"OppsyncNotReady", "OppsyncConsumerLagHigh", "OppsyncEndToEndLagHigh",
		"OppsyncDeadLetters", "OppsyncResyncNotices", "OppsyncStaleRecords", "OppsyncPendingRolesStuck",
		"OppsyncStreamGroupLagging", "OppsyncStreamOverMaxLen"} {
		if !seen[want] {
			t.Errorf("alert %s missing", want)
		}
	}
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("grafana", "oppsync-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		SchemaVersion int `json:"schemaVersion"`
		Panels        []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d", d.SchemaVersion)
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("duplicate panel id %d", p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 && p.Type != "row" {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{"oppsync_events_consumed_total", "oppsync_triggers_emitted_total",
		"oppsync_apply_duration_seconds_bucket", "oppsync_end_to_end_lag_seconds_bucket", "oppsync_kafka_consumer_lag",
		"oppsync_dead_letters_total", "oppsync_duplicates_total", "oppsync_resync_notices_total",
		"oppsync_schemas_cached", "oppsync_pending_roles", "oppsync_stream_length", "oppsync_stream_group_lag",
		"oppsync_campaign_entries_total", "oppsync_campaign_lag_seconds_bucket", "oppsync_campaign_evaluations_total",
		"oppsync_campaigns_active"} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel queries %s", want)
		}
	}
}

func TestCompose(t *testing.T) {
	doc := decodeAll(t, filepath.Join(repoRoot, "docker-compose.yml"))[0]
	services, _ := doc["services"].(map[string]any)
	var names []string
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"bridge", "kafka", "oppsync", "produce", "prometheus", "redis", "schema-registry"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	// Every bind-mounted file exists.
	for name, svc := range services {
		vols, _ := get(svc, "volumes").([]any)
		for _, v := range vols {
			src := strings.Split(v.(string), ":")[0]
			if !strings.HasPrefix(src, "./") {
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
				t.Errorf("%s mounts %s: %v", name, src, err)
			}
		}
	}
	if get(services, "oppsync", "build") == nil {
		t.Error("oppsync is not built from the Dockerfile")
	}
	if cmd := fmt.Sprint(get(services, "produce", "command")); !strings.Contains(cmd, "produce") || !strings.Contains(cmd, "kafka:9092") {
		t.Errorf("produce command = %s", cmd)
	}
	// oppsync waits for healthy dependencies.
	for _, dep := range []string{"kafka", "redis", "schema-registry"} {
		if get(services, "oppsync", "depends_on", dep, "condition") != "service_healthy" {
			t.Errorf("oppsync does not wait for %s to be healthy", dep)
		}
		if get(services, dep, "healthcheck") == nil {
			t.Errorf("%s has no healthcheck", dep)
		}
	}
	// Prometheus loads the rules file it mounts.
	prom := decodeAll(t, filepath.Join("compose", "prometheus.yml"))[0]
	if fmt.Sprint(prom["rule_files"]) != "[/etc/prometheus/alerts.yml]" {
		t.Errorf("prometheus rule_files = %v", prom["rule_files"])
	}
	if !strings.Contains(fmt.Sprint(get(prom, "scrape_configs", 0, "static_configs")), "oppsync:8080") {
		t.Error("prometheus does not scrape oppsync:8080")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var from, user string
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, line)
		f := strings.Fields(line)
		switch strings.ToUpper(f[0]) {
		case "FROM":
			from, user = f[1], "" // a new stage starts
		case "USER":
			user = f[1]
		}
	}
	nonRoot := strings.HasPrefix(from, "gcr.io/distroless/") && strings.HasSuffix(from, ":nonroot")
	scratch := from == "scratch" && user != "" && !strings.HasPrefix(user, "root") && !strings.HasPrefix(user, "0")
	if !nonRoot && !scratch {
		t.Errorf("final stage FROM %s (USER %q) is neither distroless nonroot nor scratch with a non-root user", from, user)
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=", "EXPOSE 8080",
		`ENTRYPOINT ["/oppsync"]`, "/etc/oppsync/config.yml"} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// The bridge of the compose stack: only with the salesforce profile, its
// credentials from the env file whose example is committed, its config
// loading with them, oppsync reading the schemas topic it writes, and the
// Kafka healthcheck creating that topic compacted.
func TestComposeBridge(t *testing.T) {
	doc := decodeAll(t, filepath.Join(repoRoot, "docker-compose.yml"))[0]
	services, _ := doc["services"].(map[string]any)
	br := services["bridge"]
	if fmt.Sprint(get(br, "profiles")) != "[salesforce]" {
		t.Errorf("bridge profiles = %v, want [salesforce]", get(br, "profiles"))
	}
	if cmd := fmt.Sprint(get(br, "command")); !strings.Contains(cmd, "bridge") {
		t.Errorf("bridge command = %s", cmd)
	}
	if get(br, "depends_on", "kafka", "condition") != "service_healthy" {
		t.Error("the bridge does not wait for Kafka to be healthy")
	}
	envFile, _ := get(br, "env_file", 0, "path").(string)
	if envFile != "./deploy/salesforce.env" {
		t.Fatalf("bridge env_file = %q", envFile)
	}
	example, err := os.ReadFile(filepath.Join(repoRoot, envFile+".example"))
	if err != nil {
		t.Fatal(err)
	}
	var environ []string
	for _, line := range strings.Split(string(example), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			environ = append(environ, line)
		}
	}
	b, err := os.ReadFile(filepath.Join("compose", "bridge.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(t, string(b), environ)
	if cfg.Salesforce.InstanceURL == "" || cfg.Salesforce.ClientID == "" || cfg.Salesforce.ClientSecret == "" {
		t.Errorf("the env file example does not set the Salesforce credentials: %+v", cfg.Redacted().Salesforce)
	}
	if ports := fmt.Sprint(get(br, "ports")); !strings.Contains(ports, strings.TrimPrefix(cfg.HTTP.Addr, ":")) {
		t.Errorf("bridge ports %s do not publish http.addr %s", ports, cfg.HTTP.Addr)
	}
	b, err = os.ReadFile(filepath.Join("compose", "oppsync.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if run := loadConfig(t, string(b), nil); run.Schemas.Topic != cfg.Bridge.SchemasTopic {
		t.Errorf("oppsync reads schemas.topic %q, the bridge writes %q", run.Schemas.Topic, cfg.Bridge.SchemasTopic)
	}
	hc := fmt.Sprint(get(services, "kafka", "healthcheck", "test"))
	if !strings.Contains(hc, "--topic "+cfg.Bridge.SchemasTopic) || !strings.Contains(hc, "cleanup.policy=compact") {
		t.Errorf("the kafka healthcheck does not create the compacted %s", cfg.Bridge.SchemasTopic)
	}
}

func TestKubernetesBridgeDeployment(t *testing.T) {
	m := map[string]map[string]any{}
	files, err := filepath.Glob(filepath.Join("kubernetes", "bridge", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		for _, doc := range decodeAll(t, f) {
			kind, _ := doc["kind"].(string)
			m[kind] = doc
		}
	}
	var listed []string
	for _, r := range get(m["Kustomization"], "resources").([]any) {
		listed = append(listed, filepath.Join("kubernetes", "bridge", r.(string)))
	}
	listed = append(listed, filepath.Join("kubernetes", "bridge", "kustomization.yaml"))
	sort.Strings(listed)
	if !slices.Equal(listed, files) {
		t.Errorf("kustomization resources %v, files %v", listed, files)
	}
	d := m["Deployment"]
	if get(d, "spec", "replicas") != 1 || get(d, "spec", "strategy", "type") != "Recreate" {
		t.Errorf("replicas %v, strategy %v: want exactly one bridge at any time", get(d, "spec", "replicas"), get(d, "spec", "strategy", "type"))
	}
	c := get(d, "spec", "template", "spec", "containers", 0)
	if args := fmt.Sprint(get(c, "args")); !strings.Contains(args, "bridge") || !strings.Contains(args, "/etc/oppsync/config.yml") {
		t.Errorf("args = %s", args)
	}
	for _, p := range []struct{ probe, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
		if got := get(c, p.probe, "httpGet", "path"); got != p.path {
			t.Errorf("%s path = %v, want %s", p.probe, got, p.path)
		}
	}
	sc := get(c, "securityContext")
	if get(sc, "readOnlyRootFilesystem") != true || get(sc, "runAsNonRoot") != true || get(sc, "allowPrivilegeEscalation") != false {
		t.Errorf("container securityContext not locked down: %v", sc)
	}
	var environ []string
	envs, _ := get(c, "env").([]any)
	for _, e := range envs {
		name, _ := get(e, "name").(string)
		key, _ := get(e, "valueFrom", "secretKeyRef", "key").(string)
		if get(e, "valueFrom", "secretKeyRef", "name") != get(m["Secret"], "metadata", "name") || get(m["Secret"], "stringData", key) == nil {
			t.Errorf("%s does not come from a key of the Secret", name)
		}
		environ = append(environ, name+"=placeholder")
	}
	text, _ := get(m["ConfigMap"], "data", "config.yml").(string)
	cfg := loadConfig(t, text, environ)
	if cfg.Salesforce.ClientSecret == "" || cfg.Salesforce.InstanceURL == "" {
		t.Error("the bridge config lacks Salesforce credentials")
	}
	grace, _ := get(d, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
	if time.Duration(grace)*time.Second <= cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %d <= shutdown_timeout %s", grace, cfg.ShutdownTimeout)
	}
	if port := get(c, "ports", 0, "containerPort"); fmt.Sprint(":", port) != cfg.HTTP.Addr {
		t.Errorf("containerPort %v, http.addr %s", port, cfg.HTTP.Addr)
	}
}
