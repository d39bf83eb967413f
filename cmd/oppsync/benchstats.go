package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The ceiling oppsync bench compares its throughput with: what
// `redis-benchmark -c 50 -P 16 EVALSHA <sha> 1 <key>` reaches for a script
// of one XADD, measured by the bench itself on the same machine and Redis in
// the same run. The requests are pre-encoded and the replies only counted,
// so the client costs about what redis-benchmark's does.
const (
	ceilingScript      = "return redis.call('XADD', KEYS[1], 'MAXLEN', '~', '1000', '*', 'f', ARGV[1])"
	ceilingConnections = 50
	ceilingPipeline    = 16
)

// evalCeiling runs pipelined EVALSHA calls of ceilingScript on addr for d
// and returns the calls per second. It deletes the stream it wrote.
func evalCeiling(ctx context.Context, rdb *redis.Client, addr, key string, d time.Duration) (float64, error) {
	sum := sha1.Sum([]byte(ceilingScript))
	sha := hex.EncodeToString(sum[:])
	if err := rdb.ScriptLoad(ctx, ceilingScript).Err(); err != nil {
		return 0, fmt.Errorf("ceiling: loading its script: %w", err)
	}
	defer rdb.Unlink(context.WithoutCancel(ctx), key)
	req := resp("EVALSHA", sha, "1", key, "v")
	batch := []byte(strings.Repeat(string(req), ceilingPipeline))

	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, ceilingConnections)
	deadline := time.Now().Add(d)
	for range ceilingConnections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dialer net.Dialer
			conn, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := conn.Write(batch); err != nil {
					errs <- err
					return
				}
				for range ceilingPipeline {
					if err := skipReply(r); err != nil {
						errs <- err
						return
					}
				}
				calls.Add(ceilingPipeline)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, fmt.Errorf("ceiling: %w", err)
	}
	return float64(calls.Load()) / elapsed.Seconds(), nil
}

// resp encodes one command in the Redis protocol.
func resp(args ...string) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	return b
}

// skipReply reads one reply of the ceiling script (a bulk string or an
// error) and returns the error it carries.
func skipReply(r *bufio.Reader) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(line, "-"):
		return fmt.Errorf("redis: %s", strings.TrimSpace(line[1:]))
	case strings.HasPrefix(line, "$-1"):
		return nil
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil {
			return fmt.Errorf("unexpected reply %q", line)
		}
		_, err = r.Discard(n + 2)
		return err
	}
	return fmt.Errorf("unexpected reply %q", line)
}

// redisStats is what INFO says of the server's CPU time and of the time
// spent in each command.
type redisStats struct {
	cpu      float64            // used_cpu_sys + used_cpu_user, seconds
	commands map[string]cmdStat // by command name
}

type cmdStat struct {
	calls int64
	usec  int64
}

func readRedisStats(ctx context.Context, rdb *redis.Client) (redisStats, error) {
	info, err := rdb.Info(ctx, "cpu", "commandstats").Result()
	if err != nil {
		return redisStats{}, fmt.Errorf("reading INFO: %w", err)
	}
	return parseRedisStats(info), nil
}

func parseRedisStats(info string) redisStats {
	st := redisStats{commands: map[string]cmdStat{}}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case name == "used_cpu_sys" || name == "used_cpu_user":
			v, _ := strconv.ParseFloat(value, 64)
			st.cpu += v
		case strings.HasPrefix(name, "cmdstat_"):
			var c cmdStat
			for _, kv := range strings.Split(value, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					c.calls, _ = strconv.ParseInt(v, 10, 64)
				case "usec":
					c.usec, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			st.commands[strings.TrimPrefix(name, "cmdstat_")] = c
		}
	}
	return st
}

// commandDelta is one command's calls and time between two readings.
type commandDelta struct {
	name  string
	calls int64
	usec  int64
}

// sub returns the CPU seconds and the commands that ran between before
// and s, the most expensive first.
func (s redisStats) sub(before redisStats) (float64, []commandDelta) {
	var out []commandDelta
	for name, c := range s.commands {
		b := before.commands[name]
		if d := (commandDelta{name, c.calls - b.calls, c.usec - b.usec}); d.calls > 0 {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].usec > out[j].usec || out[i].usec == out[j].usec && out[i].name < out[j].name
	})
	return s.cpu - before.cpu, out
}

// printCosts prints the Redis and Go CPU per change event of an apply
// phase. Inside a script, Redis counts each command under its own name
// and the script's total (its commands included) under evalsha.
func printCosts(w io.Writer, events int, redisCPU float64, cmds []commandDelta, goCPU float64, goOK bool) {
	per := func(sec float64) float64 { return sec * 1e6 / float64(events) }
	fmt.Fprintf(w, "redis-server CPU: %.2f s, %.1f µs per event\n", redisCPU, per(redisCPU))
	var parts []string
	for i, c := range cmds {
		if i == 8 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d calls %.2f s (%.1f µs/event)", strings.ToUpper(c.name), c.calls,
			float64(c.usec)/1e6, float64(c.usec)/float64(events)))
	}
	fmt.Fprintf(w, "redis commands: %s\n", strings.Join(parts, ", "))
	if goOK {
		fmt.Fprintf(w, "oppsync (Go) CPU: %.2f s, %.1f µs per event\n", goCPU, per(goCPU))
	}
}
