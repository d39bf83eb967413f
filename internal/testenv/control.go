package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// controlTimeout bounds one stop or start of a service: a cold Kafka start
// on a loaded two-core machine can take a minute.
const controlTimeout = 4 * time.Minute

// Outage stops service ("kafka" or "redis") through its test/ script and
// returns the function that starts it again on the same port with the same
// data (Kafka answers metadata requests, Redis PING, when it returns); when
// the test ends without calling it, a cleanup does. It is for fault tests:
// an outage breaks every other test using the service at that time, so such
// tests carry the `faults` build tag and `make test-faults` runs packages one
// at a time (-p 1).
func Outage(t testing.TB, service string) (restart func()) {
	t.Helper()
	control(t, service, "stop")
	var once sync.Once
	restart = func() { once.Do(func() { control(t, service, "start") }) }
	t.Cleanup(restart)
	return restart
}

func control(t testing.TB, service, action string) {
	t.Helper()
	// The scripts control the services that `make test` started; refuse to
	// act when the tests were pointed elsewhere.
	switch service {
	case "kafka":
		KafkaBrokers(t)
	case "redis":
		RedisAddr(t)
	}
	dir, err := ScriptsDir()
	if err != nil {
		t.Fatalf("%s %s: %v", action, service, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	script := filepath.Join(dir, service+".sh")
	cmd := exec.CommandContext(ctx, "bash", script, action)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, action, err, out)
	}
	t.Logf("%s %s: %s", script, action, out)
}

// EnvScriptsDir names the folder holding the kafka.sh and redis.sh that
// control the services OPPSYNC_TEST_* point at. Unset, it is the repository's
// test/ folder (what `make test` uses). Set it when the tests run against a
// private copy of the scripts, e.g. a developer's second set of services for
// fault tests beside the ones other work shares: a fault test must stop the
// instance it was pointed at, never another.
const EnvScriptsDir = "OPPSYNC_TEST_SCRIPTS_DIR"

// ScriptsDir returns the folder of the service scripts: $OPPSYNC_TEST_SCRIPTS_DIR,
// or the repository's test/ folder.
func ScriptsDir() (string, error) {
	if d := os.Getenv(EnvScriptsDir); d != "" {
		if !fileExists(filepath.Join(d, "kafka.sh")) {
			return "", fmt.Errorf("%s=%s has no kafka.sh", EnvScriptsDir, d)
		}
		return filepath.Abs(d)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "test"), nil
}

// repoRoot finds the module root (go.mod beside test/kafka.sh) above the
// working directory, which `go test` sets to the package's folder.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		if fileExists(filepath.Join(dir, "go.mod")) && fileExists(filepath.Join(dir, "test", "kafka.sh")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod with test/kafka.sh above the working directory")
		}
		dir = parent
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
