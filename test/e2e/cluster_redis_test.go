package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oppsync/oppsync/internal/synth"
	"github.com/oppsync/oppsync/internal/testenv"
)

// EnvRedisClusterAddrs names a running Redis Cluster (what
// test/redis-cluster.sh env prints). Unset, the test starts its own with
// test/redis-cluster.sh in a temporary folder and stops it afterwards.
const envRedisClusterAddrs = "OPPSYNC_TEST_REDIS_CLUSTER_ADDRS"

func redisCluster(t *testing.T) []string {
	t.Helper()
	if v := strings.TrimSpace(os.Getenv(envRedisClusterAddrs)); v != "" {
		return strings.Split(v, ",")
	}
	env := []string{"REDIS_CLUSTER_DIR=" + t.TempDir()}
	// Registered first: a start that fails half way still stops the nodes
	// it started.
	t.Cleanup(func() { runScript(t, env, "redis-cluster.sh", "stop") })
	runScript(t, env, "redis-cluster.sh", "start")
	addrs := exportedVar(runScript(t, env, "redis-cluster.sh", "env"), envRedisClusterAddrs)
	if addrs == "" {
		t.Fatal("redis-cluster.sh env printed no addresses")
	}
	return strings.Split(addrs, ",")
}

// slotOwner maps every slot to the address of the master serving it.
func slotOwner(t *testing.T, cc *redis.ClusterClient) func(slot int64) string {
	t.Helper()
	shards, err := cc.ClusterShards(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLUSTER SHARDS: %v", err)
	}
	return func(slot int64) string {
		for _, sh := range shards {
			for _, r := range sh.Slots {
				if r.Start <= slot && slot <= r.End {
					for _, n := range sh.Nodes {
						if n.Role == "master" {
							return net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
						}
					}
				}
			}
		}
		t.Fatalf("slot %d has no master: %v", slot, shards)
		return ""
	}
}

// Two orgs on a three-shard Redis Cluster, one oppsync each, configured with
// every node in OPPSYNC_REDIS_ADDRS: all of an org's keys hash to the org's
// slot (its {orgId} hash tag), the two orgs live on different shards, and
// each org's trigger streams hold exactly the expected entries.
func TestRedisClusterTwoOrgs(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	addrs := redisCluster(t)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = cc.Close() })
	ctx := context.Background()
	owner := slotOwner(t, cc)

	// Two org ids whose hash tags land on different masters, as the cluster
	// itself computes them.
	type org struct {
		id   string
		slot int64
		node string
	}
	var orgs []org
	for i := 0; i < 200 && len(orgs) < 2; i++ {
		id := testenv.UniqueName(t, "org")
		slot, err := cc.ClusterKeySlot(ctx, "oppsync:{"+id+"}:positions").Result()
		if err != nil {
			t.Fatalf("CLUSTER KEYSLOT: %v", err)
		}
		if n := owner(slot); len(orgs) == 0 || orgs[0].node != n {
			orgs = append(orgs, org{id, slot, n})
		}
	}
	if len(orgs) < 2 {
		t.Fatal("found no two org ids on different shards in 200 tries")
	}
	t.Logf("org %s → slot %d on %s; org %s → slot %d on %s", orgs[0].id, orgs[0].slot, orgs[0].node, orgs[1].id, orgs[1].slot, orgs[1].node)

	envs := make([]*env, len(orgs))
	wants := make([][]synth.Expected, len(orgs))
	var procs []*proc
	for i, o := range orgs {
		// The test reads each org's streams from the one node that owns its
		// slot, with a plain client: a key elsewhere would answer MOVED.
		node := redis.NewClient(&redis.Options{Addr: o.node})
		t.Cleanup(func() { _ = node.Close() })
		e := newEnvOn(t, brokers, strings.Join(addrs, ","), node, o.id, 1, defaultPartitions)
		envs[i] = e
		var chs []synth.Change
		chs, wants[i] = e.generated(1500, uint64(31+i), 100)
		e.publish(e.writer(), e.encode(e.encoder(), chs...)...)
		procs = append(procs, e.start())
		t.Cleanup(func() {
			// Leave no keys behind in the cluster this test may share.
			keys, _ := node.Keys(context.Background(), "oppsync:{"+o.id+"}:*").Result()
			for _, k := range keys {
				node.Del(context.Background(), k)
			}
		})
	}
	for i, e := range envs {
		e.waitConsumedAndCompare(wants[i], 3*time.Minute)
		if len(wants[i]) < 200 {
			t.Fatalf("org %s: only %d expected entries", e.org, len(wants[i]))
		}
	}

	for _, o := range orgs {
		// Every key of the org sits in the org's slot on the org's node, and
		// no other node holds any of them.
		node := redis.NewClient(&redis.Options{Addr: o.node})
		keys, err := node.Keys(ctx, "oppsync:{"+o.id+"}:*").Result()
		_ = node.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) < 5 {
			t.Fatalf("org %s: only %d keys on %s: %v", o.id, len(keys), o.node, keys)
		}
		for _, k := range keys {
			slot, err := cc.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if slot != o.slot {
				t.Errorf("key %s is in slot %d, want the org's slot %d", k, slot, o.slot)
			}
		}
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			if m.Options().Addr == o.node {
				return nil
			}
			other, err := m.Keys(ctx, "oppsync:{"+o.id+"}:*").Result()
			if err != nil {
				return err
			}
			if len(other) > 0 {
				return fmt.Errorf("node %s holds keys of org %s: %v", m.Options().Addr, o.id, other)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if orgs[0].node == orgs[1].node {
		t.Fatalf("both orgs on %s", orgs[0].node)
	}
	for _, p := range procs {
		if code, _ := p.stop(30 * time.Second); code != 0 {
			t.Fatalf("exit code %d after SIGTERM", code)
		}
	}
}
